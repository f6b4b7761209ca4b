'use strict';
// The shared encodings of sessionproxy's adapters (CONTRACT.md section 13),
// the same as adapters/python's codec.py: ../testdata/vectors.json holds
// the vectors both are tested against.
//
// Framework attribute names are arbitrary strings and header names are
// not, so a name keeps its lowercase letters and digits and writes every
// other byte of its UTF-8 form as '-' plus two lowercase hex digits
// ('pojun.tech' -> 'pojun-2etech', 'userId' -> 'user-49d'). Reading treats
// '_' as '-' and ignores case, because CGI, WSGI and PHP fold both.
//
// A value is JSON text with every byte outside printable ASCII (0x20-0x7E)
// and '%' itself percent-encoded, so that any Unicode text survives a
// header and every language reads the same types. Reading never throws:
// an invalid escape stays literal, and what is then not valid JSON
// (written by a backend without an adapter) is a plain string.

const crypto = require('crypto');

// The proxy's longest attribute name (CONTRACT.md section 3).
const MAX_NAME_LEN = 200;

function isKept(b) {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39); // a-z 0-9
}

function isHex(b) {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

function hex2(b) {
  return (b < 16 ? '0' : '') + b.toString(16);
}

// encodeName returns the header form of the attribute name name. It
// throws a RangeError if the result is empty or longer than the proxy
// takes: the proxy would refuse the whole update.
function encodeName(name) {
  let out = '';
  for (const b of Buffer.from(String(name), 'utf8')) {
    out += isKept(b) ? String.fromCharCode(b) : '-' + hex2(b);
  }
  if (out.length === 0 || out.length > MAX_NAME_LEN) {
    throw new RangeError(`session attribute name ${JSON.stringify(name)} encodes to ` +
      `${out.length} characters; sessionproxy takes 1 to ${MAX_NAME_LEN}`);
  }
  return out;
}

// decodeName returns the attribute name that the header name text encodes
// ('_' read as '-', case ignored, '-' plus two hex digits that byte,
// anything else literal). Never throws.
function decodeName(text) {
  const raw = Buffer.from(String(text).replace(/_/g, '-').toLowerCase(), 'latin1');
  return unescape(raw, 0x2d).toString('utf8');
}

// encodeValue returns the header form of value: JSON, percent-encoded, or
// undefined for what JSON leaves out (undefined, a function, a symbol), as
// express-session's stores leave such properties out. It throws what
// JSON.stringify throws (a BigInt, a cycle).
function encodeValue(value) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    return undefined;
  }
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + hex2(b).toUpperCase();
  }
  return out;
}

// decodeValue returns the value that the header value text holds: text is
// a string as Node gives header values (each byte one Latin-1 character)
// or a Buffer. A value that is not JSON once percent-decoded is returned
// as that plain string, as is JSON nested too deep to be written back.
// Never throws.
function decodeValue(text) {
  const raw = Buffer.isBuffer(text) ? text : Buffer.from(String(text), 'latin1');
  const plain = unescape(raw, 0x25).toString('utf8');
  try {
    const value = JSON.parse(plain);
    if (value !== null && typeof value === 'object') {
      // JSON.parse takes any depth, JSON.stringify recurses: a value
      // nested too deep to be written back reads as text, as Python's
      // json reads it.
      JSON.stringify(value);
    }
    return value;
  } catch (e) { // not JSON, or nested too deep
    return plain;
  }
}

// newID draws a session ID in the proxy's shape (CONTRACT.md section 4,
// sessionstore.ValidID): 128 bits from the OS's CSPRNG as 22 unpadded
// URL-safe base64 characters.
function newID() {
  return crypto.randomBytes(16).toString('base64url');
}

// unescape replaces each mark followed by two hex digits in raw by the
// byte they spell; any other mark stays literal.
function unescape(raw, mark) {
  const out = Buffer.alloc(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === mark && i + 2 < raw.length && isHex(raw[i + 1]) && isHex(raw[i + 2])) {
      out[n++] = parseInt(raw.toString('latin1', i + 1, i + 3), 16);
      i += 2;
      continue;
    }
    out[n++] = b;
  }
  return out.subarray(0, n);
}

// The proxy's default session.max_size, in bytes of its stored encoding.
const DEFAULT_MAX_SIZE = 64 * 1024;

// The least the proxy's stored encoding of a session spends besides its
// attributes: format and flags (2 bytes), version (at least 1), creation
// time in unix ms (6 bytes until the year 2109), last use in unix s (5),
// attribute count (at least 1). The proxy also spends 5 on the expiry
// and more on a larger version or count, so a size counted with this
// is never above the proxy's: an adapter refuses no session that the
// proxy would store (sessionstore's AppendEncode).
const SIZE_OVERHEAD = 15;

function uvarintLen(n) {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

// storedSize returns the size, at least, of the proxy's stored encoding
// of a session whose attributes have names and values of the given byte
// lengths ([nameLen, valueLen] pairs): each is a length-prefixed name and
// a length-prefixed value.
function storedSize(lengths) {
  let n = SIZE_OVERHEAD;
  for (const [nameLen, valueLen] of lengths) {
    n += uvarintLen(nameLen) + nameLen + uvarintLen(valueLen) + valueLen;
  }
  return n;
}

module.exports = { MAX_NAME_LEN, DEFAULT_MAX_SIZE, SIZE_OVERHEAD, encodeName, decodeName, encodeValue, decodeValue, newID, storedSize };
