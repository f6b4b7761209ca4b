'use strict';
// express-session's req.session kept by sessionproxy.
//
//   const sessionproxy = require('sessionproxy-express');
//   app.use(sessionproxy());
//
// req.session and req.sessionID then read the session the proxy sent in
// X-Session-* request headers, and the session's changes go back as
// X-Session-* response headers with the response's head, which waits
// for res.end (up to holdBytes of output); the proxy applies them to its store and strips them
// (CONTRACT.md sections 3 and 13). The session has express-session's API
// (regenerate, destroy, save, reload, touch, cookie), so passport's
// req.login and req.logout work unchanged.

const codec = require('./codec');

const ATTR = 'x-session-attr-';

// MAX_AGE keeps, on a Cookie, the maxAge the app set in this request.
const MAX_AGE = Symbol('maxAge');

// MAX_TTL is the longest X-Session-Max-Age the proxy takes (400 days).
const MAX_TTL = 400 * 24 * 3600;

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
        // The proxy would refuse it: the error passport's login passes on.
        const tooLarge = sizeError(st, responseHeaders(this.req), st.maxSize);
        if (tooLarge) {
          throw tooLarge;
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
// The proxy sets the cookie; of its attributes only maxAge (milliseconds,
// as express-session's) reaches it: set in a request, it becomes the
// session's own idle ttl at the proxy and the cookie's Max-Age, in seconds
// ("remember me", X-Session-Max-Age, CONTRACT.md section 16); null or 0
// goes back to the proxy's ttl and a session cookie. The proxy keeps it
// with the session; a later request reads null here until it sets one.
class Cookie {
  constructor() {
    Object.defineProperty(this, MAX_AGE, { value: undefined, writable: true });
    this.path = '/';
    this.httpOnly = true;
    this.sameSite = 'lax';
    this.secure = false;
    this.domain = undefined;
    this.originalMaxAge = null;
    this.expires = null;
  }

  get maxAge() {
    return this[MAX_AGE] === undefined ? null : this[MAX_AGE];
  }

  set maxAge(ms) {
    this[MAX_AGE] = ms === null || ms === undefined ? null : Number(ms);
    this.originalMaxAge = this[MAX_AGE];
  }

  get data() {
    return { originalMaxAge: null, expires: null, secure: this.secure, httpOnly: true, domain: this.domain, path: '/', sameSite: this.sameSite };
  }

  toJSON() {
    return this.data;
  }
}

// maxAgeHeader returns the X-Session-Max-Age pair for a cookie whose
// maxAge was set in this request, or null: seconds, rounded up, within
// what the proxy takes (400 days); null, 0 or less, or not a number go back
// to the default.
function maxAgeHeader(cookie) {
  if (!(cookie instanceof Cookie) || cookie[MAX_AGE] === undefined) {
    return null;
  }
  const ms = cookie[MAX_AGE];
  const s = Number.isFinite(ms) && ms > 0 ? Math.min(Math.ceil(ms / 1000), MAX_TTL) : 0;
  return ['X-Session-Max-Age', String(s)];
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
  const raw = new Map();
  for (const key of Object.keys(h)) {
    if (key.startsWith(ATTR) && key.length > ATTR.length) {
      // Node reads header bytes as Latin-1: a character is a byte.
      raw.set(key.slice(ATTR.length), String(h[key]).length);
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
      raw: raw, // Map of stored name to value length, as the proxy sent them
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
      const maxAge = maxAgeHeader(session.cookie);
      if (now.size > 0 && maxAge) {
        out.push(maxAge);
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
  const maxAge = maxAgeHeader(session.cookie);
  if (maxAge) {
    out.push(maxAge);
  }
  return out;
}

// The proxy's session.max_size default, and how much written output the
// middleware holds before it sends the head (and with it the session).
const DEFAULT_HOLD_BYTES = 64 * 1024;

// sizeError returns the error for a session the proxy would refuse as
// over its max_size, or null. headers are the X-Session-* response
// headers about to be sent; st.raw the session as the proxy sent it.
function sizeError(st, headers, maxSize) {
  if (!(maxSize > 0)) {
    return null;
  }
  const attrs = st.ended ? new Map() : new Map(st.raw);
  let sets = 0;
  for (const [name, value] of headers) {
    if (name.startsWith('X-Session-Set-')) {
      attrs.set(name.slice('X-Session-Set-'.length), value.length);
      sets++;
    } else if (name === 'X-Session-Unset') {
      for (const n of value.split(', ')) {
        attrs.delete(n);
      }
    }
  }
  if (sets === 0) {
    return null; // nothing grows: no update the proxy could refuse for its size
  }
  const size = codec.storedSize(Array.from(attrs, ([name, len]) => [name.length, len]));
  if (size <= maxSize) {
    return null;
  }
  const err = new Error(`sessionproxy: the session is ${size} bytes, over the proxy's max_size of ${maxSize}; it was not saved`);
  err.code = 'ESESSIONTOOLARGE';
  err.status = 500;
  return err;
}

// isEventStream reports whether the response is an event stream, by its
// Content-Type set with setHeader or in the headers held for writeHead:
// such a response is sent as it is written, never held.
function isEventStream(res, head) {
  const re = /^\s*text\/event-stream/i;
  if (re.test(String(res.getHeader ? res.getHeader('content-type') || '' : ''))) {
    return true;
  }
  return headerPairs(head).some(([k, v]) => String(k).toLowerCase() === 'content-type' && re.test(String(v)));
}

// headerPairs returns the headers of held writeHead arguments as [name,
// value] pairs (an object, or Node's flat [k, v, k, v, …]).
function headerPairs(head) {
  const h = head && (typeof head[1] === 'object' && head[1] !== null ? head[1] : head[2]);
  if (!h) {
    return [];
  }
  if (!Array.isArray(h)) {
    return Object.entries(h);
  }
  const out = [];
  for (let i = 0; i + 1 < h.length; i += 2) {
    out.push([h[i], h[i + 1]]);
  }
  return out;
}

// contentLength returns the Content-Length the app set, with setHeader or
// in held writeHead arguments, or null.
function contentLength(res, head) {
  let v = res.getHeader ? res.getHeader('content-length') : undefined;
  for (const [k, hv] of headerPairs(head)) {
    if (String(k).toLowerCase() === 'content-length') {
      v = hv;
    }
  }
  const n = Number(v);
  return v === undefined || v === null || !Number.isInteger(n) ? null : n;
}

// dropHeader removes a header the app set, with setHeader or in held
// writeHead arguments.
function dropHeader(res, head, name) {
  if (res.removeHeader) {
    res.removeHeader(name);
  }
  const i = head && (typeof head[1] === 'object' && head[1] !== null ? 1 : 2);
  if (!head || !head[i]) {
    return;
  }
  const kept = headerPairs(head).filter(([k]) => String(k).toLowerCase() !== name);
  head[i] = Array.isArray(head[i]) ? kept.flat() : Object.fromEntries(kept);
}

// hookResponse makes res carry the session's changes to the proxy. The
// changes go as response headers, so res's head waits: what the app
// writes (res.writeHead, res.write) is held in memory until res.end, so
// that a change made after writing some output is still saved, as with
// express-session. A response that outgrows holdBytes, an event stream,
// or res.flushHeaders()/res.flush() sends the head with the session at
// that point, and later changes are lost. A session over maxSize is not
// sent: the error goes to next(err), Express's error handlers, as
// express-session passes its store's errors; if nothing of the response
// was sent yet the held output is dropped, so the error handler's page
// goes out instead.
function hookResponse(req, res, st, opts, next) {
  const { writeHead, write, end, flushHeaders } = res;
  let holding = opts.holdBytes > 0;
  let held = []; // Buffers written while holding
  let heldBytes = 0;
  let head = null; // the arguments of a held res.writeHead

  // putSession sets the session's response headers, once, and returns
  // the size error, if any (then nothing of the session is sent). It
  // throws what encoding throws (a name too long, a BigInt), and the
  // error page that follows goes out without the session.
  function putSession() {
    if (st.sent) {
      return null;
    }
    if (st.failed) {
      st.sent = true;
      return null;
    }
    let headers;
    try {
      headers = responseHeaders(req);
    } catch (e) {
      st.failed = true;
      held = [];
      heldBytes = 0;
      head = null;
      throw e;
    }
    st.sent = true;
    const err = sizeError(st, headers, opts.maxSize);
    if (err) {
      st.failed = true;
      return err;
    }
    for (const [name, value] of headers) {
      res.setHeader(name, value);
    }
    return null;
  }

  // release stops holding: the head goes out with the session, then what
  // was held. A session over max_size goes to the error handlers after
  // the head, as express-session's store errors do. It returns what
  // res.write returned, or true.
  function release() {
    holding = false;
    const err = putSession();
    if (err) {
      defer(next, err);
    }
    if (head) {
      writeHead.apply(res, head);
      head = null;
    }
    const body = Buffer.concat(held);
    held = [];
    heldBytes = 0;
    return body.length > 0 ? write.call(res, body) : true;
  }

  function hold(chunk, encoding) {
    if (chunk === undefined || chunk === null) {
      return;
    }
    const b = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk);
    held.push(b);
    heldBytes += b.length;
  }

  res.writeHead = function () {
    if (holding) {
      head = Array.from(arguments);
      if (typeof head[0] === 'number') {
        res.statusCode = head[0];
      }
      if (isEventStream(res, head)) {
        release();
      }
      return this;
    }
    // Node's own call (_implicitHeader), or the app's once not holding.
    const err = putSession();
    if (err) {
      defer(next, err);
    }
    return writeHead.apply(this, arguments);
  };

  res.write = function (chunk, encoding, cb) {
    if (!holding) {
      return write.apply(this, arguments);
    }
    if (isEventStream(res, head)) {
      release();
      return write.apply(this, arguments);
    }
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    hold(chunk, encoding);
    if (heldBytes > opts.holdBytes) {
      const ok = release();
      if (typeof cb === 'function') {
        setImmediate(cb);
      }
      return ok;
    }
    if (typeof cb === 'function') {
      setImmediate(cb);
    }
    return true;
  };

  res.end = function (chunk, encoding, cb) {
    if (!holding) {
      return end.apply(this, arguments);
    }
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    holding = false;
    const before = heldBytes;
    hold(chunk, encoding);
    const last = heldBytes - before;
    const declared = contentLength(res, head);
    if (before > 0 && declared !== null && declared !== heldBytes && req.method !== 'HEAD') {
      if (declared === last) {
        // A whole new body after some writes (res.send, res.json): unheld,
        // that throws (the head is out), so it is an error handler's page
        // after a failed one. As a servlet container resets its buffer for
        // an error page, the earlier output goes.
        held = last > 0 ? [held[held.length - 1]] : [];
        heldBytes = last;
        head = null;
      } else {
        // The app's length is not the body's: Node frames what is sent.
        dropHeader(res, head, 'content-length');
      }
    }
    const err = putSession();
    if (err) {
      // Nothing was sent: the error handler's page goes out instead.
      held = [];
      heldBytes = 0;
      head = null;
      defer(next, err);
      return this;
    }
    if (head) {
      writeHead.apply(this, head);
      head = null;
    }
    const body = Buffer.concat(held);
    held = [];
    heldBytes = 0;
    return body.length > 0 ? end.call(this, body, cb) : end.call(this, cb);
  };

  res.flushHeaders = function () {
    if (holding) {
      release();
    }
    return flushHeaders.apply(this, arguments);
  };

  // res.flush (compression's, or none): what is held goes out now.
  const flush = res.flush;
  res.flush = function () {
    if (holding) {
      release();
    }
    if (typeof flush === 'function') {
      return flush.apply(this, arguments);
    }
    return undefined;
  };
}

// sessionproxy returns the middleware. Its options:
//
//   maxSize    the proxy's session.max_size in bytes (default 64 KiB, the
//              proxy's default): a session that would be larger is not
//              sent and the error goes to Express's error handlers; 0
//              leaves the check to the proxy (a 502).
//   holdBytes  how much written output is held so that the session can
//              still change after it (default 64 KiB); 0 sends the head
//              at the first write.
//
// express-session's options are accepted and ignored: the store, the
// cookie, the ID and the expiry are the proxy's.
function sessionproxy(options) {
  const opts = {
    maxSize: options && options.maxSize !== undefined ? Number(options.maxSize) : codec.DEFAULT_MAX_SIZE,
    holdBytes: options && options.holdBytes !== undefined ? Number(options.holdBytes) : DEFAULT_HOLD_BYTES,
  };
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
    st.maxSize = opts.maxSize;
    hookResponse(req, res, st, opts, next);
    next();
  };
}

module.exports = sessionproxy;
module.exports.sessionproxy = sessionproxy;
module.exports.Session = Session;
module.exports.codec = codec;
module.exports.responseHeaders = responseHeaders;
