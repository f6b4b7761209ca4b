'use strict';
// A small Express app whose session code is express-session's and
// passport's own (req.session, req.login(), req.logout()), kept by
// sessionproxy through adapters/express: two processes of it run behind
// the proxy (`go run ./examples/adapters -app express`).
//
// Usage: NODE_PATH=adapters/express/node_modules node app.js --listen 127.0.0.1:9001 --name express-1
const path = require('path');
const express = require('express');
const passport = require('passport');
const LocalStrategy = require('passport-local').Strategy;

// In an app of your own: require('sessionproxy-express') after
// `npm install /path/to/sessionproxy/adapters/express`.
const sessionproxy = require(path.join(__dirname, '../../../adapters/express'));

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const NAME = arg('name', 'express');
const USERS = { ann: { id: 'u1', username: 'ann', password: 'secret' } };

passport.use(new LocalStrategy((username, password, done) => {
  const user = USERS[username];
  done(null, user && user.password === password ? user : false);
}));
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id, done) => done(null, Object.values(USERS).find((u) => u.id === id) || false));

const app = express();
app.use(express.urlencoded({ extended: false }));
// In place of app.use(session({ secret: …, store: … })):
app.use(sessionproxy());
app.use(passport.session());

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
}

function render(p) {
  const color = NAME.endsWith('1') ? '#1565c0' : '#2e7d32';
  const form = p.user
    ? '<form method="post" action="/logout"><button>Log out</button> (<code>req.logout()</code> ends the session)</form>'
    : '<form method="post" action="/login"><input name="username" value="ann" size="8"> ' +
      '<input name="password" value="secret" size="8"> <button>Log in</button> ' +
      '(<code>req.login()</code>: a new session under a new ID)</form>';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Express behind sessionproxy: ${escape(p.name)}</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: ${color}; color: #fff; }
main { max-width: 40em; margin: 3em auto; padding: 2em; background: rgba(0,0,0,.25); border-radius: 1em; }
.who { font-size: 4em; font-weight: bold; margin: 0; }
dt { opacity: .8; } dd { font-family: monospace; font-size: 1.3em; margin: 0 0 1em 0; }
.msg { background: rgba(255,255,255,.2); padding: .5em 1em; border-radius: .5em; }
</style></head>
<body><main>
<p>Express's <code>req.session</code>, answered by</p>
<p class="who">${escape(p.name)}</p>
${p.messages.map((m) => `<p class="msg">${escape(m)}</p>`).join('\n')}
<dl>
<dt>Session ID (<code>req.sessionID</code>)</dt><dd>${escape(p.sid)}</dd>
<dt>Visits in this session (<code>req.session.visits</code>)</dt><dd>${p.visits}</dd>
<dt>Logged in as (<code>req.user</code>)</dt><dd>${escape(p.user || 'nobody')}</dd>
</dl>
${form}
<p>Reload: the proxy sends you to both Express processes in turn; each reads the
same session, which neither keeps.</p>
</main></body></html>
`;
}

app.get('/', (req, res) => {
  req.session.visits = (req.session.visits || 0) + 1;
  const messages = req.session.messages || [];
  delete req.session.messages;
  const p = {
    name: NAME, sid: req.sessionID, visits: req.session.visits,
    user: req.user ? req.user.username : '', messages,
  };
  res.set('Cache-Control', 'no-store');
  if ((req.get('Accept') || '').includes('application/json')) {
    res.json(p);
    return;
  }
  res.type('html').send(render(p));
});

function say(req, message) {
  req.session.messages = (req.session.messages || []).concat(message);
}

app.post('/login', (req, res, next) => {
  passport.authenticate('local', (err, user) => {
    if (err) return next(err);
    if (!user) {
      say(req, 'Wrong user name or password (try ann, secret).');
      return res.redirect(303, '/');
    }
    return req.login(user, (err) => {
      if (err) return next(err);
      say(req, `Logged in as ${user.username} on ${NAME}: a new session under a new ID.`);
      return res.redirect(303, '/');
    });
  })(req, res, next);
});

app.post('/logout', (req, res, next) => {
  req.logout((err) => {
    if (err) return next(err);
    say(req, `Logged out on ${NAME}: that session is gone.`);
    return res.redirect(303, '/');
  });
});

const [host, port] = arg('listen', '127.0.0.1:9001').split(/:(?=[^:]*$)/);
app.listen(Number(port), host);
