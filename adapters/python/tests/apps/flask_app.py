"""A Flask app that uses Flask's own session API, unchanged, behind
sessionproxy: the end-to-end tests (../../adapters_test.go) run two of it.

Usage: flask_app.py --listen 127.0.0.1:9001 --name flask-1
"""
import argparse
import logging

from flask import Flask, Response, jsonify, make_response, request, session, \
    stream_with_context

from sessionproxy_adapters.flask import SessionProxyInterface

NAME = "flask"
app = Flask(__name__)
app.session_interface = SessionProxyInterface()
app.config["PERMANENT_SESSION_LIFETIME"] = 14 * 24 * 3600  # seconds, as Flask takes it too


def state(**extra):
    extra.update(backend=NAME, sid=session.sid, new=session.new, created=session.created)
    return jsonify(extra)


@app.route("/flask/count")
def count():
    session["counter"] = session.get("counter", 0) + 1
    return state(counter=session["counter"])


@app.route("/flask/typed")
def typed():
    session["pojun.tech"] = "José 🙂"
    session["userId"] = 3
    session["cart"] = [1, "two", 3.5, None]
    session["prefs"] = {"items": [1, 2], "ok": True, "name": "Zoë"}
    return state()


@app.route("/flask/raw")
def raw():
    # What a backend without an adapter may send: not the adapters'
    # encoding (not JSON, an invalid percent escape).
    resp = state()
    resp.headers["X-Session-Set-bad"] = "%ZZ{not json"
    return resp


@app.route("/flask/dump")
def dump():
    return state(attrs={k: [type(v).__name__, v] for k, v in session.items()})


@app.route("/flask/login")
def login():
    session.regenerate()
    session["user"] = request.args.get("user", "")
    return state()


@app.route("/flask/remember")
def remember():
    # "Remember me": PERMANENT_SESSION_LIFETIME becomes the session's own
    # ttl at the proxy, with a persistent cookie.
    session["user"] = request.args.get("user", "ann")
    session.permanent = request.args.get("on", "1") == "1"
    return state()


@app.route("/flask/logout")
def logout():
    session.invalidate()
    return state()


@app.route("/flask/late")
def late():
    # The page is written before the session changes: Flask saves the
    # session once the view has returned, so the change is kept.
    resp = make_response("written\n")
    session["late"] = 1
    return resp


@app.route("/flask/stream")
def stream():
    # A streamed body runs after the session is saved: its change is lost
    # (README).
    session["early"] = 1

    def body():
        yield "first\n"
        session["late"] = 1
        yield "last\n"
    return Response(stream_with_context(body()), mimetype="text/plain")


@app.route("/flask/big")
def big():
    session["big"] = "x" * int(request.args["n"])
    return state()


@app.errorhandler(500)
def server_error(e):
    # Flask's handler for an error of the request, save_session's included.
    return jsonify(error=repr(getattr(e, "original_exception", e))), 500


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--name", default="flask")
    args = ap.parse_args()
    NAME = args.name
    host, port = args.listen.rsplit(":", 1)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=int(port), threaded=True)
