"""A small Flask app whose session code is Flask's own (`session`,
`flash()`), kept by sessionproxy through adapters/python: two processes of
it run behind the proxy (`go run ./examples/adapters`).

Usage: app.py --listen 127.0.0.1:9001 --name flask-1
"""
import argparse
import logging

from flask import (Flask, flash, get_flashed_messages, jsonify, redirect, render_template_string,
                   request, session)

from sessionproxy_adapters.flask import SessionProxyInterface

NAME = "flask"
app = Flask(__name__)
# The one line that puts the session in the proxy's hands.
app.session_interface = SessionProxyInterface()

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Flask behind sessionproxy: {{ name }}</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: {{ color }}; color: #fff; }
main { max-width: 40em; margin: 3em auto; padding: 2em; background: rgba(0,0,0,.25);
       border-radius: 1em; }
.who { font-size: 4em; font-weight: bold; margin: 0; }
dt { opacity: .8; } dd { font-family: monospace; font-size: 1.3em; margin: 0 0 1em 0; }
.msg { background: rgba(255,255,255,.2); padding: .5em 1em; border-radius: .5em; }
</style></head>
<body><main>
<p>Flask's <code>session</code>, answered by</p>
<p class="who">{{ name }}</p>
{% for m in messages %}<p class="msg">{{ m }}</p>{% endfor %}
<dl>
<dt>Session ID (<code>session.sid</code>)</dt><dd>{{ sid }}</dd>
<dt>Visits in this session (<code>session["visits"]</code>)</dt><dd>{{ visits }}</dd>
<dt>Logged in as (<code>session["user"]</code>)</dt><dd>{{ user or "nobody" }}</dd>
</dl>
{% if user %}
<form method="post" action="/logout"><button>Log out</button> (ends the session)</form>
{% else %}
<form method="post" action="/login"><input name="username" value="ann" size="12">
<button>Log in</button> (a new session ID, the same visits)</form>
{% endif %}
<p>Reload: the proxy sends you to both Flask processes in turn; each reads the
same session, which neither keeps.</p>
</main></body></html>
"""


@app.route("/")
def index():
    session["visits"] = session.get("visits", 0) + 1
    page = dict(name=NAME, sid=session.sid, visits=session["visits"],
                user=session.get("user", ""), messages=get_flashed_messages())
    if "application/json" in request.headers.get("Accept", ""):
        return jsonify(page)
    color = "#1565c0" if NAME.endswith("1") else "#2e7d32"
    resp = app.make_response(render_template_string(PAGE, color=color, **page))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@app.route("/login", methods=["POST"])
def login():
    user = request.form.get("username", "").strip() or "ann"
    # The adapter's session.regenerate(): a new ID, the same data, against
    # session fixation (Flask's own cookie session has no ID to change).
    session.regenerate()
    session["user"] = user
    flash(f"Logged in as {user} on {NAME}: the session has a new ID.")
    return redirect("/", code=303)


@app.route("/logout", methods=["POST"])
def logout():
    # The adapter's session.invalidate(): the session ends; the flash
    # message starts a new one holding only itself.
    session.invalidate()
    flash(f"Logged out on {NAME}: that session is gone.")
    return redirect("/", code=303)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--name", default="flask")
    args = ap.parse_args()
    NAME = args.name
    host, port = args.listen.rsplit(":", 1)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=int(port), threaded=True)
