#!/usr/bin/env node
// A minimal stateless backend for sessionproxy, Node.js standard library only.
// Its session arrives in X-Session-* request headers; changes go back in
// X-Session-* response headers.
//
//   GET /            counts visits in the session
//   GET /login?user= sets the user and rotates the session ID
//   GET /logout      invalidates the session
//   GET /attrs       shows every session attribute
//   POST /attrs      sets the attributes of a JSON object {"name": "value", ...}
//
// Usage: node app.js [--listen 127.0.0.1:9001] [--name node]
'use strict';
const http = require('node:http');

function arg(flag, def) {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : def;
}

const name = arg('--name', 'node');
const [host, port] = arg('--listen', '127.0.0.1:9001').split(/:(?=\d+$)/);

// The session arrives as one request header per attribute. Node answers
// 431 to every request whose headers exceed 16 KiB in all (the default
// --max-http-header-size), so a session that grew past that would lock its
// user out, logout included. Allow twice sessionproxy's max_size (64 KiB
// by default). See docs/limits.md.
const options = { maxHeaderSize: 128 * 1024 };

function reply(req, res, counter) {
  const attrs = {};
  for (const [k, v] of Object.entries(req.headers)) { // names arrive lower-cased
    if (k.startsWith('x-session-attr-')) attrs[k.slice('x-session-attr-'.length)] = v;
  }
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({
    backend: name,
    session: req.headers['x-session-id'] || '',
    user: req.headers['x-session-attr-user'] || '',
    counter,
    attrs,
  }));
}

http.createServer(options, (req, res) => {
  const url = new URL(req.url, 'http://backend');
  if (req.method === 'POST' && url.pathname === '/attrs') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let values;
      try {
        values = JSON.parse(Buffer.concat(chunks).toString());
        for (const [k, v] of Object.entries(values)) res.setHeader('X-Session-Set-' + k, String(v));
      } catch (e) { // not a JSON object, or a name or value Node cannot send
        for (const h of res.getHeaderNames()) res.removeHeader(h);
        res.statusCode = 400;
        res.end('want a JSON object of strings\n');
        return;
      }
      reply(req, res, 0);
    });
    return;
  }
  let counter = 0;
  if (url.pathname === '/login') {
    res.setHeader('X-Session-Set-User', url.searchParams.get('user') || '');
    res.setHeader('X-Session-Rotate', '1');
  } else if (url.pathname === '/logout') {
    res.setHeader('X-Session-Invalidate', '1');
  } else if (url.pathname !== '/attrs') {
    counter = (parseInt(req.headers['x-session-attr-counter'] || '0', 10) || 0) + 1;
    res.setHeader('X-Session-Set-Counter', String(counter));
  }
  reply(req, res, counter);
}).listen(Number(port), host);
