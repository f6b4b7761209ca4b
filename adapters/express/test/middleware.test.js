'use strict';
// The middleware against a fake request and response: what it reads from
// the proxy's request headers, and which response headers it writes for
// what the app did, including passport's own login and logout.
const test = require('node:test');
const assert = require('node:assert/strict');

const sessionproxy = require('..');
const { codec } = sessionproxy;

const SID = 'AAAAAAAAAAAAAAAAAAAAAA';

// fakeReq returns a request as Node gives it: header names lower case,
// values as Latin-1 strings.
function fakeReq(headers) {
  const h = {};
  for (const [k, v] of Object.entries(headers || {})) {
    h[k.toLowerCase()] = v;
  }
  return { headers: h };
}

// fakeRes is a response whose end() and write() write the head through
// this.writeHead, as Node's ServerResponse does (_implicitHeader).
function fakeRes() {
  return {
    statusCode: 200,
    headersSent: false,
    head: null,
    out: {},
    setHeader(name, value) {
      if (this.headersSent) {
        throw new Error('ERR_HTTP_HEADERS_SENT');
      }
      this.out[name.toLowerCase()] = value;
    },
    writeHead(status) {
      this.headArgs = Array.from(arguments);
      this.statusCode = status;
      this.headersSent = true;
      this.head = Object.assign({}, this.out);
      return this;
    },
    getHeader(name) {
      return this.out[name.toLowerCase()];
    },
    removeHeader(name) {
      delete this.out[name.toLowerCase()];
    },
    body: [],
    write(chunk) {
      if (!this.headersSent) {
        this.writeHead(this.statusCode);
      }
      this.body.push(String(chunk));
      return true;
    },
    end(chunk) {
      if (!this.headersSent) {
        this.writeHead(this.statusCode);
      }
      if (typeof chunk !== 'function' && chunk !== undefined) {
        this.body.push(String(chunk));
      }
    },
    flushHeaders() {
      if (!this.headersSent) {
        this.writeHead(this.statusCode);
      }
    },
  };
}

// sessionHeaders returns the X-Session-* headers of the written head.
function sessionHeaders(res) {
  const out = {};
  for (const [k, v] of Object.entries(res.head)) {
    if (k.startsWith('x-session-')) {
      out[k] = v;
    }
  }
  return out;
}

// run passes a request with the proxy's headers for a stored session
// holding attrs (name to header value) through the middleware.
function run(attrs, extra, options, onError) {
  const headers = Object.assign({ 'X-Session-Id': SID, 'X-Session-Created': '1700000000000' }, extra);
  for (const [name, value] of Object.entries(attrs || {})) {
    headers['X-Session-Attr-' + codec.encodeName(name)] = value;
  }
  const req = fakeReq(headers);
  const res = fakeRes();
  let called = 0;
  sessionproxy(options)(req, res, (err) => {
    if (err) {
      assert.ok(onError, String(err));
      onError(err);
      return;
    }
    called++;
  });
  assert.equal(called, 1);
  return { req, res };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('reads the session the proxy sent', () => {
  const { req, res } = run({
    counter: '3', 'pojun.tech': '"Jos%C3%A9 %F0%9F%99%82"', cart: '[1,"two",3.5,null]',
    prefs: '{"items":[1,2],"ok":true}', plain: '%ZZ{not json',
  });
  assert.equal(req.sessionID, SID);
  assert.equal(req.session.id, SID);
  assert.equal(req.sessionNew, false);
  assert.equal(req.sessionCreated, 1700000000000);
  assert.equal(req.session.counter, 3);
  assert.equal(req.session['pojun.tech'], 'José 🙂');
  assert.deepEqual(req.session.cart, [1, 'two', 3.5, null]);
  assert.deepEqual(req.session.prefs, { items: [1, 2], ok: true });
  assert.equal(req.session.plain, '%ZZ{not json');
  assert.deepEqual(Object.keys(req.session).sort(), ['cart', 'cookie', 'counter', 'plain', 'pojun.tech', 'prefs']);
  res.end();
  assert.deepEqual(sessionHeaders(res), {}, 'nothing changed, nothing written');
});

test('a new session and a request that did not come through the proxy', () => {
  const { req } = run({}, { 'X-Session-New': '1' });
  assert.equal(req.sessionNew, true);
  assert.equal(req.sessionID, SID);
  const direct = fakeReq({});
  sessionproxy()(direct, fakeRes(), () => {});
  assert.equal(direct.sessionID, undefined);
  assert.equal(direct.sessionNew, true);
  assert.deepEqual(Object.keys(direct.session), ['cookie']);
});

test('writes only what changed: sets, in-place changes and unsets', () => {
  const { req, res } = run({ keep: '"same"', n: '1', cart: '[1]', gone: 'true', gone2: '2', undef: '1' });
  req.session.n += 1;
  req.session.cart.push(2); // in place: no flag to set
  delete req.session.gone;
  delete req.session.gone2;
  req.session.undef = undefined; // JSON leaves it out: removed
  req.session['José'] = 'x';
  req.session.fn = () => 1; // JSON leaves it out: never written
  req.session.cookie.maxAge = 1000; // remember me: the session's own ttl at the proxy, in seconds
  res.end();
  assert.deepEqual(sessionHeaders(res), {
    'x-session-set-n': '2',
    'x-session-set-cart': '[1,2]',
    'x-session-set--4aos-c3-a9': '"x"',
    'x-session-unset': 'gone, gone2, undef',
    'x-session-max-age': '1',
  });
});

test('cookie.maxAge in milliseconds becomes X-Session-Max-Age in seconds', () => {
  for (const [ms, want] of [[1500, '2'], [14 * 24 * 3600 * 1000, '1209600'], [null, '0'], [0, '0'], [-5, '0'],
    [1e15, String(400 * 24 * 3600)], ['abc', '0']]) {
    const { req, res } = run({ n: '1' });
    req.session.cookie.maxAge = ms;
    res.end();
    assert.deepEqual(sessionHeaders(res), { 'x-session-max-age': want }, String(ms));
  }
  // Not set in this request: nothing sent, the proxy keeps what it has.
  const { req, res } = run({ n: '1' });
  assert.equal(req.session.cookie.maxAge, null);
  res.end();
  assert.deepEqual(sessionHeaders(res), {});
});

test('a value in another spelling is not written back untouched', () => {
  // As Python writes 1.0, or a backend without an adapter writes JSON.
  const { req, res } = run({ f: '1.0', obj: '{ "b" : 1 , "a" : [ 2 ] }', plain: 'plain text' });
  assert.equal(req.session.f, 1);
  assert.equal(req.session.plain, 'plain text');
  res.end();
  assert.deepEqual(sessionHeaders(res), {});
});

test('names that are methods or properties of every object are left alone', () => {
  const { req, res } = run({ save: '1', cookie: '"c"', __proto__x: '1', constructor: '2', id: '"x"', n: '1' });
  // A header for __proto__ itself, not through an object literal.
  const again = fakeReq({ 'x-session-id': SID, 'x-session-attr--5f-5fproto-5f-5f': '{"polluted":true}', 'x-session-attr-n': '1' });
  const res2 = fakeRes();
  sessionproxy()(again, res2, () => {});
  assert.equal(again.session.polluted, undefined);
  assert.equal(({}).polluted, undefined);
  assert.equal(typeof req.session.save, 'function');
  assert.equal(typeof req.session.cookie, 'object');
  assert.equal(req.session.id, SID);
  assert.equal(req.session.__proto__x, 1);
  req.session.n = 5;
  res.end();
  // The skipped names are neither set nor unset: another app's
  // attributes of those names stay in the store.
  assert.deepEqual(sessionHeaders(res), { 'x-session-set-n': '5' });
  res2.end();
  assert.deepEqual(sessionHeaders(res2), {});
});

test('regenerate: a new ID at once, the old session ended, the new one holding what is set', async () => {
  const { req, res } = run({ counter: '3', user: '"eve"' });
  const old = req.session;
  await new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
  assert.notEqual(req.sessionID, SID);
  assert.match(req.sessionID, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(req.session, old);
  assert.equal(req.session.id, req.sessionID);
  assert.deepEqual(Object.keys(req.session), ['cookie'], 'express-session\'s regenerate starts empty');
  req.session.user = 'ann';
  res.end();
  assert.deepEqual(sessionHeaders(res), {
    'x-session-invalidate': '1',
    'x-session-set-user': '"ann"',
    'x-session-rotate': req.sessionID,
  });
});

test('regenerate with nothing set, and destroy: the session ends', async () => {
  const a = run({ counter: '3' });
  await new Promise((resolve) => a.req.session.regenerate(resolve));
  a.res.end();
  assert.deepEqual(sessionHeaders(a.res), { 'x-session-invalidate': '1' });

  const b = run({ counter: '3' });
  const held = b.req.session;
  await new Promise((resolve) => held.destroy(resolve));
  assert.equal(b.req.session, undefined, 'express-session unsets req.session');
  b.res.end();
  assert.deepEqual(sessionHeaders(b.res), { 'x-session-invalidate': '1' });

  // destroy, then regenerate through the held session, then a write: a
  // new session holding that write alone.
  const c = run({ counter: '3' });
  const held2 = c.req.session;
  held2.destroy();
  await new Promise((resolve) => held2.regenerate(resolve));
  c.req.session.message = 'bye';
  c.res.end();
  assert.deepEqual(sessionHeaders(c.res), {
    'x-session-invalidate': '1',
    'x-session-set-message': '"bye"',
    'x-session-rotate': c.req.sessionID,
  });
});

test('save and reload', async () => {
  const { req, res } = run({ n: '1' });
  req.session.n = 2;
  await new Promise((resolve) => req.session.reload(resolve));
  assert.equal(req.session.n, 1, 'reload puts back what the proxy sent');
  req.session.n = 3;
  await new Promise((resolve) => req.session.save(resolve));
  req.session.n = 4;
  await new Promise((resolve) => req.session.reload(resolve));
  assert.equal(req.session.n, 3, 'reload puts back what save() saw');
  assert.equal(req.session.touch(), req.session);
  res.end();
  assert.deepEqual(sessionHeaders(res), { 'x-session-set-n': '3' });

  const fresh = run({}, { 'X-Session-New': '1' });
  const err = await new Promise((resolve) => fresh.req.session.reload(resolve));
  assert.match(String(err), /failed to load session/, 'as express-session, for a session never stored');
});

test('save reports what cannot be written', async () => {
  const { req } = run({});
  req.session['x'.repeat(201)] = 1;
  const err = await new Promise((resolve) => req.session.save(resolve));
  assert.ok(err instanceof RangeError, String(err));
  delete req.session['x'.repeat(201)];
  req.session.big = 1n;
  const err2 = await new Promise((resolve) => req.session.save(resolve));
  assert.ok(err2 instanceof TypeError, String(err2));
});

test('output is held until end, so that changes after a write are saved', () => {
  const { req, res } = run({ n: '1' });
  req.session.n = 2;
  res.write('first bytes');
  res.writeHead(201);
  assert.equal(res.head, null, 'nothing is sent before end');
  req.session.n = 3;
  res.end('last');
  assert.equal(res.statusCode, 201);
  assert.deepEqual(sessionHeaders(res), { 'x-session-set-n': '3' });
  assert.deepEqual(res.body, ['first byteslast']);
});

test('an error page after some output replaces it; a wrong length is dropped', () => {
  // res.send after res.write: the output before it goes, as a servlet
  // container resets its buffer for an error page.
  const a = run({ n: '1' });
  a.res.writeHead(200, { 'X-Page': 'ok' });
  a.res.write('half a page');
  a.res.statusCode = 500;
  a.res.setHeader('Content-Length', 5);
  a.res.end('error');
  assert.equal(a.res.statusCode, 500);
  assert.deepEqual(a.res.body, ['error']);
  // A length that matches neither: the header goes, Node frames the body.
  const b = run({ n: '1' });
  b.res.writeHead(200, ['Content-Length', '2', 'X-Page', 'ok']);
  b.res.write('abc');
  b.res.end('def');
  assert.deepEqual(b.res.body, ['abcdef']);
  assert.deepEqual(b.res.headArgs, [200, ['X-Page', 'ok']]);
  const c = run({ n: '1' });
  c.res.setHeader('Content-Length', 5);
  c.res.write('ab');
  c.res.end('cdef');
  assert.equal(c.res.out['content-length'], undefined);
  // A length that is the whole body stays.
  const d = run({ n: '1' });
  d.res.setHeader('Content-Length', 4);
  d.res.write('ab');
  d.res.end('cd');
  assert.equal(d.res.out['content-length'], 4);
  assert.deepEqual(d.res.body, ['abcd']);
});

test('changes after the head is flushed are lost, and say so', async () => {
  for (const flush of [
    (res) => res.flushHeaders(),
    (res) => res.flush(),
    (res) => res.write('x'.repeat(64 * 1024 + 1)),
    (res) => { res.setHeader('Content-Type', 'text/event-stream'); res.write('data: 1\n\n'); },
    (res) => res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' }),
    (res) => res.writeHead(200, ['Content-Type', 'text/event-stream']),
  ]) {
    const { req, res } = run({ n: '1' });
    req.session.n = 2;
    res.write('first bytes');
    flush(res);
    assert.notEqual(res.head, null, `${flush}: the head is sent`);
    req.session.n = 3;
    res.end();
    assert.deepEqual(sessionHeaders(res), { 'x-session-set-n': '2' }, String(flush));
    const err = await new Promise((resolve) => req.session.save(resolve));
    assert.match(String(err), /headers are sent/);
    const err2 = await new Promise((resolve) => req.session.regenerate(resolve));
    assert.match(String(err2), /headers are sent/);
  }
  // holdBytes: 0 sends the head at the first write.
  const { req, res } = run({ n: '1' }, {}, { holdBytes: 0 });
  res.write('a');
  req.session.n = 3;
  res.end();
  assert.deepEqual(sessionHeaders(res), {});
});

test('a session over max_size goes to next(err), nothing of it sent', async () => {
  // 15 bytes of overhead, "n" and "1" (4), "big" (4) and the quoted value (3 + n + 2).
  const fits = 64 * 1024 - 15 - 4 - (1 + 3) - (3 + 2);
  for (const [n, over] of [[fits, false], [fits + 1, true]]) {
    const errs = [];
    const { req, res } = run({ n: '1' }, {}, {}, (err) => errs.push(err));
    req.session.big = 'x'.repeat(n);
    res.write('page');
    res.end();
    await tick();
    if (!over) {
      assert.equal(errs.length, 0, String(errs));
      assert.equal(sessionHeaders(res)['x-session-set-big'].length, n + 2);
      continue;
    }
    assert.equal(errs.length, 1);
    assert.equal(errs[0].code, 'ESESSIONTOOLARGE');
    assert.equal(res.head, null, 'the held page is dropped: the error handler answers');
    res.statusCode = 500;
    res.end('error page');
    assert.deepEqual(sessionHeaders(res), {});
    assert.deepEqual(res.body, ['error page']);
  }
  // The session the proxy sent counts, by its bytes as sent.
  const { req } = run({ old: 'y'.repeat(40000) });
  req.session.more = 'z'.repeat(30000);
  const err = await new Promise((resolve) => req.session.save(resolve));
  assert.equal(err && err.code, 'ESESSIONTOOLARGE');
  delete req.session.old;
  const ok = await new Promise((resolve) => req.session.save(resolve));
  assert.equal(ok, undefined, 'unsetting makes room');
  // maxSize: 0 leaves it to the proxy.
  const loose = run({}, {}, { maxSize: 0 });
  loose.req.session.big = 'x'.repeat(100000);
  loose.res.end();
  assert.equal(sessionHeaders(loose.res)['x-session-set-big'].length, 100002);
});

test('an attribute that cannot be encoded fails the response once, then the error page goes out', () => {
  const { req, res } = run({ n: '1' });
  req.session.n = 2;
  req.session.big = 10n;
  assert.throws(() => res.end(), TypeError);
  assert.equal(res.headersSent, false);
  res.statusCode = 500;
  res.end();
  assert.equal(res.statusCode, 500);
  assert.deepEqual(sessionHeaders(res), {}, 'nothing of the session is sent');
});

test('mounted twice, the first wins', () => {
  const { req, res } = run({ n: '1' });
  const s = req.session;
  sessionproxy()(req, res, () => {});
  assert.equal(req.session, s);
  req.session.n = 2;
  res.end();
  assert.deepEqual(sessionHeaders(res), { 'x-session-set-n': '2' });
});

test('passport: req.login rotates, req.logout ends the session', async () => {
  const passport = new (require('passport').Passport)();
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, { id }));
  const init = passport.initialize();
  const auth = passport.session();

  // Login: the visitor's counter goes, the user comes, under a new ID.
  const a = run({ counter: '2' });
  await new Promise((resolve) => init(a.req, a.res, resolve));
  await new Promise((resolve, reject) => a.req.login({ id: 'ann' }, (err) => (err ? reject(err) : resolve())));
  assert.notEqual(a.req.sessionID, SID);
  a.res.end();
  assert.deepEqual(sessionHeaders(a.res), {
    'x-session-invalidate': '1',
    'x-session-set-passport': '{"user":"ann"}',
    'x-session-rotate': a.req.sessionID,
  });

  // The next request (what the proxy then sends) is logged in.
  const b = run({ passport: '{"user":"ann"}' });
  await new Promise((resolve) => init(b.req, b.res, resolve));
  await new Promise((resolve, reject) => auth(b.req, b.res, (err) => (err ? reject(err) : resolve())));
  assert.deepEqual(b.req.user, { id: 'ann' });
  assert.equal(b.req.isAuthenticated(), true);
  b.res.end();
  assert.deepEqual(sessionHeaders(b.res), {});

  // Logout: the session ends.
  const c = run({ passport: '{"user":"ann"}' });
  await new Promise((resolve) => init(c.req, c.res, resolve));
  await new Promise((resolve, reject) => auth(c.req, c.res, (err) => (err ? reject(err) : resolve())));
  await new Promise((resolve, reject) => c.req.logout((err) => (err ? reject(err) : resolve())));
  assert.equal(c.req.isAuthenticated(), false);
  c.res.end();
  assert.deepEqual(sessionHeaders(c.res), { 'x-session-invalidate': '1' });

  // keepSessionInfo: what was there goes over to the new session.
  const d = run({ counter: '2' });
  await new Promise((resolve) => init(d.req, d.res, resolve));
  await new Promise((resolve, reject) => d.req.login({ id: 'bob' }, { keepSessionInfo: true }, (err) => (err ? reject(err) : resolve())));
  await tick();
  d.res.end();
  assert.deepEqual(sessionHeaders(d.res), {
    'x-session-invalidate': '1',
    'x-session-set-counter': '2',
    'x-session-set-passport': '{"user":"bob"}',
    'x-session-rotate': d.req.sessionID,
  });
});
