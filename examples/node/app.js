#!/usr/bin/env node
// A minimal stateless backend for sessionproxy, Node.js standard library only.
// Its session arrives in X-Session-* request headers; changes go back in
// X-Session-* response headers.
//
//   GET /            counts visits in the session
//   GET /login?user= sets the user and rotates the session ID
//   GET /logout      invalidates the session
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

http.createServer((req, res) => {
  // Node lower-cases incoming header names.
  const url = new URL(req.url, 'http://backend');
  let counter = 0;
  if (url.pathname === '/login') {
    res.setHeader('X-Session-Set-User', url.searchParams.get('user') || '');
    res.setHeader('X-Session-Rotate', '1');
  } else if (url.pathname === '/logout') {
    res.setHeader('X-Session-Invalidate', '1');
  } else {
    counter = (parseInt(req.headers['x-session-attr-counter'] || '0', 10) || 0) + 1;
    res.setHeader('X-Session-Set-Counter', String(counter));
  }
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({
    backend: name,
    session: req.headers['x-session-id'] || '',
    user: req.headers['x-session-attr-user'] || '',
    counter,
  }));
}).listen(Number(port), host);
