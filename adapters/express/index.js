'use strict';
// express-session's req.session kept by sessionproxy.
//
//   const sessionproxy = require('sessionproxy-express');
//   app.use(sessionproxy());
//
// req.session and req.sessionID then read the session the proxy sent in
// X-Session-* request headers, and the session's changes go back as
// X-Session-* response headers just before the response's head is
// written; the proxy applies them to its store and strips them
// (CONTRACT.md sections 3 and 13). The session has express-session's API
// (regenerate, destroy, save, reload, touch, cookie), so passport's
// req.login and req.logout work unchanged.

const codec = require('./codec');

const ATTR = 'x-session-attr-';

// The per-request state, out of the session object so that none of it is
// taken for an attribute.
const STATE = Symbol('sessionproxy');

// Session is req.session: its own enumerable properties are the session's
// attributes, as with express-session. Its methods are on the prototype,
// and id and req are not enumerable, so none of them is an attribute
// (passport's merge() copies what for-in sees).
class Session {
  constructor(req, values) {
    Object.defineProperty(this, 'id', { value: req.sessionID, configurable: true });
    Object.defineProperty(this, 'req', { value: req, configurable: true });
    this.cookie = new Cookie();
    for (const name of Object.keys(values)) {
      // A name that is a method or a property of every object ("save",
      // "cookie", "__proto__") is left out, as express-session leaves it
      // out; it is not written back either, so another app's attribute of
      // that name stays in the store.
      if (!(name in this)) {
        Object.defineProperty(this, name, { value: values[name], writable: true, enumerable: true, configurable: true });
      }
    }
  }

  // regenerate ends this session and gives req a new, empty one under a
  // new ID, which req.sessionID is at once (passport calls it on login and
  // logout). The proxy deletes the old session and stores the new one if
  // anything is set in it.
  regenerate(fn) {
    const st = this.req[STATE];
    const err = late(st);
    if (!err) {
      st.ended = true;
      st.stored = null;
      st.rotateTo = codec.newID();
      this.req.sessionID = st.rotateTo;
      this.req.sessionNew = true;
      this.req.sessionCreated = Date.now(); // the proxy's clock may differ by a few ms
      this.req.session = new Session(this.req, {});
    }
    defer(fn, err);
    return this;
  }

  // destroy ends the session and unsets req.session, as express-session
  // does: the proxy deletes the session and expires its cookie.
  destroy(fn) {
    const st = this.req[STATE];
    const err = late(st);
    if (!err) {
      st.ended = true;
      st.stored = null;
      st.rotateTo = null;
      delete this.req.session;
    }
    defer(fn, err);
    return this;
  }

  // save checks that the session can be written (its error is the one
  // the response would otherwise throw) and remembers it for reload(); the
  // proxy stores it when the response's head is written.
  save(fn) {
    const st = this.req[STATE];
    let err = late(st);
    if (!err) {
      try {
        const now = snapshot(this);
        for (const name of now.keys()) {
          codec.encodeName(name);
        }
        st.stored = now;
      } catch (e) {
        err = e;
      }
    }
    defer(fn, err);
    return this;
  }

  // reload puts back the session as it was last saved (as the proxy sent
  // it, or as save() left it) in a new req.session, as express-session
  // does; a session never stored fails as it does with express-session.
  reload(fn) {
    const st = this.req[STATE];
    let err = null;
    if (!st.stored) {
      err = new Error('failed to load session');
    } else {
      const values = {};
      for (const [name, enc] of st.stored) {
        values[name] = codec.decodeValue(enc);
      }
      this.req.session = new Session(this.req, values);
    }
    defer(fn, err);
    return this;
  }

  // touch and resetMaxAge change nothing: the proxy's sliding expiry
  // (session.ttl) is renewed by every request of the session.
  touch() {
    return this;
  }

  resetMaxAge() {
    return this;
  }
}

// Cookie describes the proxy's session cookie with its default settings
// (CONTRACT.md section 4): a browser-session cookie for the whole site.
// Changing it changes nothing; the proxy sets the cookie.
class Cookie {
  constructor() {
    this.path = '/';
    this.httpOnly = true;
    this.sameSite = 'lax';
    this.secure = false;
    this.domain = undefined;
    this.originalMaxAge = null;
    this.expires = null;
  }

  get maxAge() {
    return null;
  }

  set maxAge(ms) {}

  get data() {
    return { originalMaxAge: null, expires: null, secure: this.secure, httpOnly: true, domain: this.domain, path: '/', sameSite: this.sameSite };
  }

  toJSON() {
    return this.data;
  }
}

// late returns the error of a session change made after the response's
// head was written, or null: such a change cannot reach the proxy.
function late(st) {
  return st.sent ? new Error('sessionproxy: the response headers are sent; session changes can no longer reach the proxy') : null;
}

function defer(fn, err) {
  if (typeof fn === 'function') {
    setImmediate(fn, err || undefined);
  } else if (err) {
    throw err;
  }
}

// snapshot returns the session's attributes as a Map of name to encoded
// value. It throws what encoding throws.
function snapshot(session) {
  const out = new Map();
  for (const name of Object.keys(session)) {
    if (name === 'cookie') {
      continue;
    }
    const enc = codec.encodeValue(session[name]);
    if (enc !== undefined) {
      out.set(name, enc);
    }
  }
  return out;
}

// readRequest returns the request's state and the session's attributes
// from the proxy's X-Session-* request headers.
function readRequest(req) {
  const h = req.headers;
  const sid = typeof h['x-session-id'] === 'string' && h['x-session-id'] !== '' ? h['x-session-id'] : undefined;
  const created = Number.parseInt(h['x-session-created'], 10);
  const values = {};
  for (const key of Object.keys(h)) {
    if (key.startsWith(ATTR) && key.length > ATTR.length) {
      values[codec.decodeName(key.slice(ATTR.length))] = codec.decodeValue(h[key]);
    }
  }
  return {
    st: {
      isNew: h['x-session-new'] === '1' || sid === undefined,
      created: Number.isFinite(created) ? created : undefined,
      incoming: null, // Map of name to encoded value, of the names req.session holds
      stored: null, // what reload() puts back
      ended: false, // destroy() or regenerate() ended the session the proxy sent
      rotateTo: null, // the ID regenerate() drew
      sent: false, // the response's head is written
      failed: false, // encoding the session failed once (the error went to the app)
    },
    sid,
    values,
  };
}

// responseHeaders returns the X-Session-* response headers, as [name,
// value] pairs, that turn the session the proxy sent into req.session. It
// throws what encoding throws (a name too long, a BigInt).
function responseHeaders(req) {
  const st = req[STATE];
  const out = [];
  const session = req.session instanceof Session ? req.session : null;
  if (st.ended) {
    out.push(['X-Session-Invalidate', '1']);
    if (session) {
      const now = snapshot(session);
      for (const [name, enc] of now) {
        out.push(['X-Session-Set-' + codec.encodeName(name), enc]);
      }
      if (now.size > 0 && st.rotateTo) {
        out.push(['X-Session-Rotate', st.rotateTo]);
      }
    }
    return out;
  }
  if (!session) {
    // The app replaced or deleted req.session: express-session then
    // saves nothing either.
    return out;
  }
  const now = snapshot(session);
  const gone = [];
  for (const name of st.incoming.keys()) {
    if (!now.has(name)) {
      gone.push(codec.encodeName(name));
    }
  }
  for (const [name, enc] of now) {
    if (st.incoming.get(name) !== enc) {
      out.push(['X-Session-Set-' + codec.encodeName(name), enc]);
    }
  }
  if (gone.length > 0) {
    out.push(['X-Session-Unset', gone.join(', ')]);
  }
  return out;
}

// hookWriteHead runs fn just before res's head is written, however that
// happens (res.writeHead, or the first write, end or flushHeaders, which
// all call it), as the on-headers package that express-session uses.
function hookWriteHead(res, fn) {
  const writeHead = res.writeHead;
  res.writeHead = function () {
    fn();
    return writeHead.apply(this, arguments);
  };
}

// sessionproxy returns the middleware. Options are accepted for
// express-session's sake and ignored: the store, the cookie, the ID and
// the expiry are the proxy's.
function sessionproxy(options) {
  return function sessionproxyMiddleware(req, res, next) {
    if (req.session) { // mounted twice, or after express-session
      next();
      return;
    }
    const { st, sid, values } = readRequest(req);
    Object.defineProperty(req, STATE, { value: st });
    req.sessionID = sid;
    req.sessionNew = st.isNew;
    req.sessionCreated = st.created;
    req.session = new Session(req, values);
    // What was sent, re-encoded, so that a value another language wrote
    // in another spelling (1.0 for 1) is not written back unchanged.
    st.incoming = snapshot(req.session);
    st.stored = st.isNew ? null : new Map(st.incoming);
    hookWriteHead(res, function () {
      if (st.sent) {
        return;
      }
      if (st.failed) {
        // The app has had the error; its error page goes out without
        // the session's changes.
        st.sent = true;
        return;
      }
      let headers;
      try {
        headers = responseHeaders(req);
      } catch (e) {
        // As express-session's save at res.end: the error reaches the code
        // that wrote the response, and nothing of the session is sent.
        st.failed = true;
        throw e;
      }
      st.sent = true;
      for (const [name, value] of headers) {
        res.setHeader(name, value);
      }
    });
    next();
  };
}

module.exports = sessionproxy;
module.exports.sessionproxy = sessionproxy;
module.exports.Session = Session;
module.exports.codec = codec;
module.exports.responseHeaders = responseHeaders;
