'use strict';
// An Express app with passport and passport-local that uses
// express-session's API, unchanged, behind sessionproxy: the end-to-end
// test (../express_test.go) runs two of it.
//
// Usage: node testapp/app.js --listen 127.0.0.1:9001 --name express-1
const express = require('express');
const passport = require('passport');
const LocalStrategy = require('passport-local').Strategy;

const sessionproxy = require('..');

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
app.use(sessionproxy());
app.use(passport.session());

function state(req, extra) {
  return Object.assign({
    backend: NAME,
    sid: req.sessionID,
    new: req.sessionNew,
    created: req.sessionCreated,
    user: req.user ? req.user.username : '',
  }, extra);
}

function typeName(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

app.get('/express/count', (req, res) => {
  req.session.counter = (req.session.counter || 0) + 1;
  res.json(state(req, { counter: req.session.counter }));
});

app.post('/express/login', passport.authenticate('local'), (req, res) => {
  res.json(state(req));
});

// "Remember me": cookie.maxAge (ms) is the session's own ttl at the proxy
// and a persistent cookie; null goes back.
app.get('/express/remember', (req, res) => {
  req.session.user = 'ann';
  req.session.cookie.maxAge = req.query.ms === 'null' ? null : Number(req.query.ms);
  res.json(state(req));
});

app.get('/express/whoami', (req, res) => {
  res.json(state(req));
});

app.get('/express/logout', (req, res, next) => {
  req.logout((err) => (err ? next(err) : res.json(state(req))));
});

app.get('/express/typed', (req, res) => {
  req.session['pojun.tech'] = 'José 🙂';
  req.session.userId = 3;
  req.session.ratio = -1.5;
  req.session.cart = [1, 'two', 3.5, null];
  req.session.prefs = { items: [1, 2], ok: true, name: 'Zoë' };
  res.json(state(req));
});

app.get('/express/raw', (req, res) => {
  // What a backend without an adapter may send: not the adapters'
  // encoding (not JSON, an invalid percent escape).
  res.setHeader('X-Session-Set-bad', '%ZZ{not json');
  res.json(state(req));
});

app.get('/express/dump', (req, res) => {
  const attrs = {};
  for (const [k, v] of Object.entries(req.session)) {
    if (k !== 'cookie') {
      attrs[k] = [typeName(v), v];
    }
  }
  res.json(state(req, { attrs }));
});

app.get('/express/big', (req, res) => {
  req.session.big = 'x'.repeat(Number(req.query.n));
  res.json(state(req));
});

app.get('/express/bigsize', (req, res) => {
  res.json(state(req, { counter: req.session.big === undefined ? -1 : req.session.big.length }));
});

app.get('/express/late', (req, res) => {
  // Output written before a session change is held until res.end, so the
  // change is saved; past the adapter's holdBytes (64 KiB) the head goes
  // out with the session as it is then, and a later change is lost
  // (README: what differs from express-session).
  req.session.early = 1;
  res.type('text/plain');
  res.write(req.query.pad ? 'x'.repeat(Number(req.query.pad)) + '\n' : 'streaming\n');
  req.session.late = 1;
  setTimeout(() => res.end('done\n'), 10);
});

app.get('/express/fails', (req, res) => {
  // Some output, then an error: the error handler's page replaces the
  // held output (unheld, Express would cut the connection); the session
  // goes with it, as express-session saves it whatever the status.
  req.session.before = 1;
  res.type('text/plain');
  res.write('half a page\n');
  throw new Error('boom');
});

app.get('/express/events', (req, res) => {
  // An event stream is never held: its first event reaches the client at
  // once, with the session as it was then.
  req.session.early = 1;
  res.set('Content-Type', 'text/event-stream');
  res.set('Cache-Control', 'no-cache');
  res.write('data: first\n\n');
  req.session.late = 1;
  setTimeout(() => res.end('data: last\n\n'), 1500);
});

app.use((err, req, res, next) => {
  res.status(500).json({ error: String(err) });
});

const [host, port] = arg('listen', '127.0.0.1:9001').split(/:(?=[^:]*$)/);
app.listen(Number(port), host);
