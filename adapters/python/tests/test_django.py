"""Django's request.session over the proxy's headers, through the
middleware with Django's RequestFactory (login() and logout() with
django.contrib.auth run behind the real proxy in adapters_test.go)."""
import unittest

try:
    import django
except ImportError:  # Debian's python3-django is for /usr/bin/python3
    django = None


def setUpModule():
    if django is None:
        return
    # Imported here: the test loader would touch the lazy settings object
    # in the module's namespace before they are configured.
    from django.conf import settings
    if not settings.configured:
        settings.configure(SECRET_KEY="unit", ALLOWED_HOSTS=["*"], USE_TZ=True)
        django.setup()


@unittest.skipIf(django is None, "Django is not installed for this python3 (use /usr/bin/python3)")
class DjangoTest(unittest.TestCase):
    def run_view(self, view, **attrs):
        from django.http import HttpResponse
        from django.test import RequestFactory
        from sessionproxy_adapters.django import SessionMiddleware
        headers = {"HTTP_X_SESSION_ID": "AAAAAAAAAAAAAAAAAAAAAA",
                   "HTTP_X_SESSION_CREATED": "1700000000000"}
        for name, wire in attrs.items():
            headers["HTTP_X_SESSION_ATTR_" + name.upper().replace("-", "_")] = wire
        request = RequestFactory().get("/", **headers)

        def get_response(request):
            body = view(request.session)
            return HttpResponse(body if body is not None else "")
        resp = SessionMiddleware(get_response)(request)
        return request, {k: v for k, v in resp.items() if k.lower().startswith("x-session-")}

    def test_read_types(self):
        seen = {}

        def view(s):
            seen.update(s.items())
            seen["key"] = s.session_key
        attrs = {"-5fauth-5fuser-5fid": "%221%22", "n": "3", "m": "{\"a\":[1]}",
                 "text": "%22Jos%C3%A9 %F0%9F%99%82%22", "junk": "%ZZ{"}
        _, h = self.run_view(view, **attrs)
        self.assertEqual(seen, {"_auth_user_id": "1", "n": 3, "m": {"a": [1]},
                                "text": "José 🙂", "junk": "%ZZ{",
                                "key": "AAAAAAAAAAAAAAAAAAAAAA"})
        self.assertEqual(h, {})

    def test_write_and_delete(self):
        def view(s):
            s["n"] = s["n"] + 1
            del s["gone"]
            s["same"] = "x"
        _, h = self.run_view(view, n="1", gone="2", same="%22x%22")
        self.assertEqual(h, {"X-Session-Set-n": "2", "X-Session-Unset": "gone"})

    def test_cycle_key_rotates(self):
        def view(s):
            s.cycle_key()
            s["user"] = "ann"
            return s.session_key
        req, h = self.run_view(view, cart="[1]")
        self.assertRegex(h["X-Session-Rotate"], r"^[A-Za-z0-9_-]{22}$")
        self.assertEqual(req.session.session_key, h["X-Session-Rotate"])
        self.assertEqual(h["X-Session-Set-user"], '"ann"')
        self.assertNotIn("X-Session-Set-cart", h)

    def test_flush_invalidates(self):
        _, h = self.run_view(lambda s: s.flush(), user="%22ann%22")
        self.assertEqual(h, {"X-Session-Invalidate": "1"})

    def test_flush_then_write_starts_a_new_session(self):
        def view(s):
            s.flush()
            s["msg"] = "bye"
        _, h = self.run_view(view, user="%22ann%22")
        self.assertEqual(h, {"X-Session-Invalidate": "1", "X-Session-Set-msg": '"bye"'})

    def test_flush_then_save_names_the_new_id(self):
        def view(s):
            s.flush()
            s["msg"] = "bye"
            s.save()
            return s.session_key
        req, h = self.run_view(view, user="%22ann%22")
        self.assertEqual(h["X-Session-Rotate"], req.session.session_key)
        self.assertEqual(h["X-Session-Invalidate"], "1")

    def test_no_save_on_500(self):
        from django.http import HttpResponse
        from django.test import RequestFactory
        from sessionproxy_adapters.django import SessionMiddleware

        def get_response(request):
            request.session["x"] = 1
            return HttpResponse(status=500)
        resp = SessionMiddleware(get_response)(RequestFactory().get("/"))
        self.assertFalse([k for k, _ in resp.items() if k.lower().startswith("x-session-")])


if __name__ == "__main__":
    unittest.main()
