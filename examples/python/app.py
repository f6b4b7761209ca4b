#!/usr/bin/env python3
"""A minimal stateless backend for sessionproxy, standard library only.

Its session arrives in X-Session-* request headers; changes go back in
X-Session-* response headers.

    GET /            counts visits in the session
    GET /login?user= sets the user and rotates the session ID
    GET /logout      invalidates the session

Usage: app.py [--listen 127.0.0.1:9001] [--name python]
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def make_handler(name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive with the proxy

        def do_GET(self):
            url = urlparse(self.path)
            extra = {}
            counter = 0
            if url.path == "/login":
                extra["X-Session-Set-User"] = parse_qs(url.query).get("user", [""])[0]
                extra["X-Session-Rotate"] = "1"
            elif url.path == "/logout":
                extra["X-Session-Invalidate"] = "1"
            else:
                counter = int(self.headers.get("X-Session-Attr-Counter") or 0) + 1
                extra["X-Session-Set-Counter"] = str(counter)
            body = json.dumps({
                "backend": name,
                "session": self.headers.get("X-Session-Id", ""),
                "user": self.headers.get("X-Session-Attr-User", ""),
                "counter": counter,
            }).encode()
            self.send_response(200)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--name", default="python")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), make_handler(args.name)).serve_forever()


if __name__ == "__main__":
    main()
