"""Flask's session over the proxy's headers, through Flask's test client
(the end-to-end tests behind the real proxy are adapters_test.go)."""
import json
import unittest

try:
    import flask
except ImportError:  # Debian's python3-flask is for /usr/bin/python3
    flask = None


def make_app():
    from sessionproxy_adapters.flask import SessionProxyInterface
    app = flask.Flask(__name__)
    app.session_interface = SessionProxyInterface()

    @app.route("/count")
    def count():
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.route("/read")
    def read():
        return flask.jsonify({k: flask.session[k] for k in flask.session})

    @app.route("/nothing")
    def nothing():
        return "no session"

    @app.route("/append")
    def append():
        flask.session["cart"].append(3)  # in place: no `modified`
        return "ok"

    @app.route("/drop")
    def drop():
        flask.session.pop("user.name", None)
        return "ok"

    @app.route("/login")
    def login():
        flask.session.regenerate()
        flask.session["user"] = "ann"
        return flask.session.sid

    @app.route("/logout")
    def logout():
        flask.session.invalidate()
        return "bye"

    @app.route("/long-name")
    def long_name():
        flask.session["." * 67] = 1
        return "ok"

    @app.route("/big/<int:n>")
    def big(n):
        flask.session["big"] = "x" * n
        return "ok"

    @app.route("/logout-and-flash")
    def logout_and_flash():
        flask.session.invalidate()
        flask.flash("logged out")
        return "bye"

    return app


@unittest.skipIf(flask is None, "Flask is not installed for this python3 (use /usr/bin/python3)")
class FlaskTest(unittest.TestCase):
    def get(self, path, **attrs):
        headers = {"X-Session-Id": "AAAAAAAAAAAAAAAAAAAAAA", "X-Session-Created": "1700000000000"}
        for name, wire in attrs.items():
            headers["X-Session-Attr-" + name] = wire
        return make_app().test_client().get(path, headers=headers)

    def session_headers(self, resp):
        return {k: v for k, v in resp.headers.items() if k.lower().startswith("x-session-")}

    def test_counter(self):
        resp = self.get("/count")
        self.assertEqual(resp.data, b"1")
        self.assertEqual(self.session_headers(resp), {"X-Session-Set-n": "1"})
        resp = self.get("/count", n="41")
        self.assertEqual(self.session_headers(resp), {"X-Session-Set-n": "42"})

    def test_types_and_names(self):
        resp = self.get("/read", **{"user-2ename": "%22Jos%C3%A9 %F0%9F%99%82%22",
                                    "cart": "[1,2]", "plain": "not json", "bad": "%ZZ%22"})
        self.assertEqual(json.loads(resp.data), {"user.name": "José 🙂", "cart": [1, 2],
                                                 "plain": "not json", "bad": "%ZZ\""})
        self.assertEqual(self.session_headers(resp), {}, "reading writes nothing")
        self.assertIn("Cookie", resp.headers.get("Vary", ""))

    def test_nothing_touched(self):
        resp = self.get("/nothing", a="1")
        self.assertEqual(self.session_headers(resp), {})

    def test_in_place_change(self):
        resp = self.get("/append", cart="[1,2]")
        self.assertEqual(self.session_headers(resp), {"X-Session-Set-cart": "[1,2,3]"})

    def test_unset(self):
        resp = self.get("/drop", **{"user-2ename": "%22x%22", "keep": "1"})
        self.assertEqual(self.session_headers(resp), {"X-Session-Unset": "user-2ename"})

    def test_regenerate(self):
        resp = self.get("/login")
        rotate = resp.headers["X-Session-Rotate"]
        self.assertRegex(rotate, r"^[A-Za-z0-9_-]{22}$")
        self.assertEqual(resp.data.decode(), rotate)
        self.assertEqual(resp.headers["X-Session-Set-user"], '"ann"')

    def test_invalidate(self):
        resp = self.get("/logout", user="%22ann%22")
        self.assertEqual(self.session_headers(resp), {"X-Session-Invalidate": "1"})
        resp = self.get("/logout-and-flash", user="%22ann%22")
        h = self.session_headers(resp)
        self.assertEqual(h["X-Session-Invalidate"], "1")
        self.assertEqual(h["X-Session-Set--5fflashes"], '[["message","logged out"]]')
        self.assertNotIn("X-Session-Set-user", h)

    def test_name_too_long_fails_the_request(self):
        app = make_app()
        app.testing = False  # a 500, as in production, not the exception
        resp = app.test_client().get("/long-name",
                                     headers={"X-Session-Id": "AAAAAAAAAAAAAAAAAAAAAA"})
        self.assertEqual(resp.status_code, 500)
        self.assertEqual(self.session_headers(resp), {})

    def test_over_max_size_fails_the_request(self):
        # 15 bytes of overhead, "old" with its 40000-byte value as sent
        # (1+3 + 3+40000), "big" with its quoted value (1+3 + 3+n+2).
        fits = 64 * 1024 - 15 - (4 + 40003) - (4 + 3 + 2)
        old = "y" * 40000
        resp = self.get("/big/%d" % fits, old=old)
        self.assertEqual(resp.status_code, 200)
        self.assertEqual(len(resp.headers["X-Session-Set-big"]), fits + 2)
        app = make_app()
        app.testing = False  # a 500, as in production, not the exception
        errors = []

        def on_error(e):
            errors.append(e.original_exception)
            return "err", 500
        app.register_error_handler(500, on_error)
        resp = app.test_client().get("/big/%d" % (fits + 1), headers={
            "X-Session-Id": "AAAAAAAAAAAAAAAAAAAAAA", "X-Session-Attr-old": old})
        self.assertEqual(resp.status_code, 500)
        self.assertEqual(self.session_headers(resp), {})
        from sessionproxy_adapters.wsgi import SessionTooLarge
        self.assertEqual([type(e) for e in errors], [SessionTooLarge])
        # Unsetting makes room; max_size=0 leaves it to the proxy.
        from sessionproxy_adapters.wsgi import Incoming, check_size
        check_size(Incoming(raw={"old": 40000}), [("X-Session-Unset", "old"),
                                                  ("X-Session-Set-big", "x" * 60000)], 64 * 1024)
        check_size(Incoming(), [("X-Session-Set-big", "x" * 100000)], 0)


if __name__ == "__main__":
    unittest.main()
