'use strict';
// The shared encodings against ../../testdata/vectors.json, the vectors
// every adapter's codec reads, and reading that never throws.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');

const codec = require('../codec');

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'testdata', 'vectors.json'), 'utf8'));

// A small seeded generator, so that a failure repeats.
function rng(seed) {
  let x = seed >>> 0;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

test('names: the shared vectors', () => {
  assert.ok(vectors.names.length > 0);
  for (const c of vectors.names) {
    assert.equal(codec.encodeName(c.name), c.header, c.name);
    assert.equal(codec.decodeName(c.header), c.name, c.header);
    // As CGI and WSGI give it: - as _, upper case.
    assert.equal(codec.decodeName(c.header.replace(/-/g, '_').toUpperCase()), c.name, c.header);
  }
  for (const c of vectors.names_read) {
    assert.equal(codec.decodeName(c.header), c.name, c.header);
  }
});

test('names: header-safe, round trip, 1 to 200 characters', () => {
  for (const name of ['ä€𝄞', '\x00\r\n', 'a'.repeat(200), 'Ab.C_d-E f', '__proto__']) {
    const enc = codec.encodeName(name);
    assert.match(enc, /^[a-z0-9-]{1,200}$/);
    assert.equal(codec.decodeName(enc), name);
  }
  assert.equal(codec.encodeName('n'.repeat(200)).length, 200);
  for (const name of ['', 'n'.repeat(201), '.'.repeat(67)]) {
    assert.throws(() => codec.encodeName(name), RangeError, JSON.stringify(name));
  }
  const r = rng(24);
  for (let i = 0; i < 2000; i++) {
    let name = '';
    for (let n = 1 + r(11); n > 0; n--) {
      const pick = r(3);
      name += String.fromCodePoint(pick === 0 ? 32 + r(95) : pick === 1 ? 0x80 + r(0x780) : 0x10000 + r(0xfffff));
    }
    const enc = codec.encodeName(name);
    assert.equal(codec.decodeName(enc), name);
    assert.equal(codec.decodeName(enc.toUpperCase().replace(/-/g, '_')), name);
  }
});

test('values: the shared vectors', () => {
  assert.ok(vectors.values.length > 0);
  for (const c of vectors.values) {
    assert.equal(codec.encodeValue(c.value), c.header, JSON.stringify(c.value));
    assert.deepEqual(codec.decodeValue(c.header), c.value, c.header);
  }
  for (const c of vectors.values_read) {
    assert.deepEqual(codec.decodeValue(c.header), c.value, JSON.stringify(c.header));
    assert.deepEqual(codec.decodeValue(Buffer.from(c.header, 'latin1')), c.value, JSON.stringify(c.header));
  }
});

test('values: header-safe, round trip', () => {
  const values = ['José 🙂', '\u2028\x7f%', '\ud83d', 0.1, 1e300, -0.5, [1, 'two', 3.5, null],
    { items: [1, 2], ok: true, name: 'Zoë', nested: { deep: ['%41'] } }, '', 'a"b\\c'];
  for (const v of values) {
    const enc = codec.encodeValue(v);
    assert.match(enc, /^[\x20-\x7e]*$/);
    assert.ok(!/%(?![0-9A-F]{2})/.test(enc), enc);
    // A lone surrogate is JSON-escaped (\ud83d), so it survives as well.
    assert.deepEqual(codec.decodeValue(enc), v);
  }
  // What JSON leaves out, express-session's stores leave out.
  assert.equal(codec.encodeValue(undefined), undefined);
  assert.equal(codec.encodeValue(() => 1), undefined);
  assert.equal(codec.encodeValue({ a: undefined, b: 1 }), '{"b":1}');
  assert.throws(() => codec.encodeValue(1n), TypeError);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => codec.encodeValue(cycle), TypeError);
});

test('values: reading never throws', () => {
  const r = rng(7);
  for (let i = 0; i < 5000; i++) {
    let text = '';
    for (let n = r(20); n > 0; n--) {
      text += String.fromCharCode(r(4) === 0 ? '%{}[]"0123456789aAfF,:'.charCodeAt(r(22)) : r(256));
    }
    codec.decodeValue(text);
    codec.decodeName(text);
  }
  // Nesting too deep to write back (JSON.stringify recurses) reads as
  // text, so that an untouched value never fails the request.
  const deep = '['.repeat(200000) + ']'.repeat(200000);
  assert.equal(typeof codec.decodeValue(deep), 'string');
});

test('newID: the proxy\'s shape (sessionstore.ValidID)', () => {
  const seen = new Set();
  const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < 1000; i++) {
    const id = codec.newID();
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    // The last character carries 2 bits of the ID and 4 zero bits.
    assert.equal(b64.indexOf(id[21]) & 0x0f, 0, id);
    assert.ok(!seen.has(id));
    seen.add(id);
  }
});
