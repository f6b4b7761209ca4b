"""Flask's ``session`` kept by sessionproxy.

    from sessionproxy_adapters.flask import SessionProxyInterface
    app.session_interface = SessionProxyInterface()

``session`` then reads the session the proxy sent in X-Session-* request
headers, and the changes go back as X-Session-* response headers, which
the proxy applies and strips. No secret key, no cookie of Flask's own: the
proxy sets the session cookie.

``session.permanent = True`` ("remember me") gives the session its own idle
lifetime of the app's PERMANENT_SESSION_LIFETIME at the proxy and a
persistent cookie (X-Session-Max-Age); ``False`` goes back to the proxy's
ttl and a session cookie.

Beyond Flask's session API, the session has ``sid`` (the proxy's session
ID), ``new``, ``created`` (unix milliseconds), ``regenerate()`` (a new ID,
same data: call it after login) and ``invalidate()`` (end the session:
logout).
"""
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from .codec import new_id
from .wsgi import (DEFAULT_MAX_SIZE, SessionTooLarge, check_size, max_age_header, read_environ,
                   response_headers)

__all__ = ["SessionProxyInterface", "SessionProxySession", "SessionTooLarge"]


class SessionProxySession(CallbackDict, SessionMixin):
    """A Flask session over the proxy's session headers.

    ``modified`` is kept as Flask's own sessions keep it, but changes are
    found by comparing values, so an in-place change to a nested list or
    dict is saved without setting ``modified``.
    """

    modified = False
    accessed = False

    def __init__(self, incoming):
        def on_update(self):
            self.modified = True
            self.accessed = True

        super().__init__(incoming.attrs, on_update)
        self.incoming = incoming
        self.sid = incoming.sid
        self.new = incoming.new
        self.created = incoming.created
        self.invalidated = False
        self.rotate_to = None
        self.failed = False  # saving raised once: Flask's error page goes out without it

    def __getitem__(self, key):
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self.accessed = True
        return super().setdefault(key, default)

    def regenerate(self):
        """Move the session to a new ID, keeping its data (after login,
        against session fixation). ``sid`` is the new ID at once."""
        self.rotate_to = self.sid = new_id()
        self.modified = self.accessed = True

    def invalidate(self):
        """End the session (logout): the proxy deletes it and expires the
        cookie. Anything set afterwards in this request starts a new
        session under a new ID."""
        self.clear()
        self.invalidated = True
        self.rotate_to = self.sid = None
        self.modified = self.accessed = True


class SessionProxyInterface(SessionInterface):
    """A Flask session interface that keeps sessions in sessionproxy.

    ``max_size`` is the proxy's session.max_size in bytes (default 64 KiB,
    the proxy's default): a session that would be larger makes
    save_session raise SessionTooLarge, which Flask handles as any error
    of a request (logged, then the 500 error handler), and nothing of the
    session's changes is sent. 0 leaves the check to the proxy (a 502).
    """

    session_class = SessionProxySession

    def __init__(self, max_size=DEFAULT_MAX_SIZE):
        self.max_size = max_size

    def open_session(self, app, request):
        return self.session_class(read_environ(request.environ))

    def save_session(self, app, session, response):
        if session.accessed:
            response.vary.add("Cookie")
        if session.failed:
            return  # the error page of the failure below
        # Every value is compared, not only those Flask saw touched: an
        # in-place change through .values() or iteration sets no flag.
        try:
            headers = response_headers(
                session.incoming, dict(session),
                invalidate=session.invalidated, rotate_to=session.rotate_to)
            before = (not session.invalidated
                      and bool(session.incoming.attrs.get("_permanent")))
            if session.permanent != before:
                headers.append(max_age_header(
                    app.permanent_session_lifetime.total_seconds() if session.permanent else 0))
            check_size(session.incoming, headers, self.max_size)
        except (SessionTooLarge, TypeError, ValueError):
            # Once: Flask calls save_session again for its error page.
            session.failed = True
            raise
        for name, value in headers:
            response.headers[name] = value
