#!/usr/bin/env python3
"""A minimal stateless backend for sessionproxy, standard library only.

Its session arrives in X-Session-* request headers; changes go back in
X-Session-* response headers.

    GET /            counts visits in the session
    GET /login?user= sets the user and rotates the session ID
    GET /logout      invalidates the session
    GET /attrs       shows every session attribute
    POST /attrs      sets the attributes of a JSON object {"name": "value", ...}

Usage: app.py [--listen 127.0.0.1:9001] [--name python]
"""
import argparse
import http.client
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# The session arrives as one request header per attribute, and http.server
# reads headers with http.client's limits: 100 header lines (a session of
# more than about 80 attributes gets 431 "Too many headers") and 65536
# bytes per line (one attribute of the default max_size, 64 KiB, just
# fits). Raise both: the line limit to at least max_size plus 1 KiB. See
# docs/limits.md.
http.client._MAXHEADERS = 1000
http.client._MAXLINE = 128 * 1024

ATTR = "x-session-attr-"


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
            elif url.path != "/attrs":
                counter = int(self.headers.get("X-Session-Attr-Counter") or 0) + 1
                extra["X-Session-Set-Counter"] = str(counter)
            self.reply(extra, counter)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if urlparse(self.path).path != "/attrs":
                self.send_error(404)
                return
            try:
                values = json.loads(body)
                extra = {"X-Session-Set-" + k: v for k, v in values.items()}
            except (ValueError, AttributeError):
                self.send_error(400, "want a JSON object of strings")
                return
            self.reply(extra, 0)

        def reply(self, extra, counter):
            attrs = {k.lower()[len(ATTR):]: v for k, v in self.headers.items()
                     if k.lower().startswith(ATTR)}
            body = json.dumps({
                "backend": name,
                "session": self.headers.get("X-Session-Id", ""),
                "user": self.headers.get("X-Session-Attr-User", ""),
                "counter": counter,
                "attrs": attrs,
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
