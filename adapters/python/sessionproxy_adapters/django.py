"""Django's ``request.session`` kept by sessionproxy.

In settings.MIDDLEWARE, replace
``django.contrib.sessions.middleware.SessionMiddleware`` with
``sessionproxy_adapters.django.SessionMiddleware``. ``request.session``
then reads the session the proxy sent in X-Session-* request headers, and
its changes go back as X-Session-* response headers, which the proxy
applies and strips; the proxy sets the session cookie.

``django.contrib.auth``'s ``login()`` calls ``cycle_key()``, which rotates
the session to a new ID; ``logout()`` calls ``flush()``, which invalidates
it; a write after ``flush()`` starts a new session holding it.

``request.session.set_expiry(n)`` ("remember me") gives the session its own
idle lifetime of n seconds at the proxy and a persistent cookie
(X-Session-Max-Age); ``set_expiry(0)`` (until the browser closes) and
``set_expiry(None)`` go back to the proxy's ttl and a session cookie. A
datetime or timedelta counts from now. The proxy's ttl stands in for
SESSION_COOKIE_AGE, and SESSION_EXPIRE_AT_BROWSER_CLOSE is always the case
until set_expiry says otherwise.
"""
import copy

from django.contrib.sessions.backends.base import SessionBase
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin

from .codec import new_id
from django.conf import settings

from .wsgi import (DEFAULT_MAX_SIZE, Incoming, SessionTooLarge, check_size, max_age_header,
                   read_environ, response_headers)

__all__ = ["SessionMiddleware", "SessionStore", "SessionTooLarge"]


class SessionStore(SessionBase):
    """A Django session over the proxy's session headers.

    There is no store to talk to: load() returns what the proxy sent, and
    the changes are the middleware's to send back. Values must be what
    JSON holds, as with Django's default JSONSerializer.
    """

    def __init__(self, session_key=None, incoming=None):
        self.incoming = incoming if incoming is not None else Incoming()
        super().__init__(session_key or self.incoming.sid)
        self.invalidated = False
        self.rotate_to = None

    @property
    def new(self):
        """True when this request started the session."""
        return self.incoming.new

    @property
    def created(self):
        """The session's creation time, unix milliseconds (or None)."""
        return self.incoming.created

    def load(self):
        if self.invalidated:
            return {}
        return copy.deepcopy(self.incoming.attrs)

    def exists(self, session_key):
        # The proxy refuses a drawn ID it already holds (new_id draws 128
        # bits): nothing to ask here.
        return False

    def create(self):
        # cycle_key (login) and save(must_create=True): a new ID at once,
        # which the proxy takes for this session (X-Session-Rotate: <id>).
        self._session_key = self.rotate_to = new_id()
        self.modified = True

    def save(self, must_create=False):
        # The middleware sends the changes. A session flushed and written
        # again gets its new ID here, as Django's own stores give one.
        if must_create or self.session_key is None:
            self.create()

    def delete(self, session_key=None):
        if session_key is not None and session_key != self.session_key:
            return  # cycle_key's old ID: the rotation deletes it
        # flush() (logout): the session ends.
        self.invalidated = True
        self.rotate_to = None
        self._session_cache = {}

    @classmethod
    def clear_expired(cls):
        pass  # the proxy expires sessions

    def response_headers(self):
        """The X-Session-* headers that send this request's changes.

        It raises SessionTooLarge, as a Django backend raises its store's
        error from save(), when the session would be over
        settings.SESSIONPROXY_MAX_SIZE (default 64 KiB, the proxy's
        default max_size; 0 leaves the check to the proxy).
        """
        current = getattr(self, "_session_cache", None)
        headers = response_headers(self.incoming, current,
                                   invalidate=self.invalidated, rotate_to=self.rotate_to)
        expiry = self._expiry_header(current)
        if expiry is not None:
            headers.append(expiry)
        check_size(self.incoming, headers,
                   getattr(settings, "SESSIONPROXY_MAX_SIZE", DEFAULT_MAX_SIZE))
        return headers

    def _expiry_header(self, current):
        """X-Session-Max-Age when set_expiry changed the session's expiry
        (Django keeps it as the attribute _session_expiry), else None."""
        if current is None:
            return None
        before = None if self.invalidated else self.incoming.attrs.get("_session_expiry")
        after = current.get("_session_expiry")
        if after == before:
            return None
        if after is None or after == 0:
            return max_age_header(0)
        return max_age_header(max(self.get_expiry_age(), 1))


class SessionMiddleware(MiddlewareMixin):
    """Django's SessionMiddleware, with the session kept by sessionproxy."""

    session_class = SessionStore

    def process_request(self, request):
        request.session = self.session_class(incoming=read_environ(request.META))

    def process_response(self, request, response):
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore):
            return response
        if session.accessed:
            patch_vary_headers(response, ("Cookie",))
        # As Django's own middleware: no session save for a 500. A save
        # that fails raises, as Django's does with its backend's error:
        # Django logs it and answers with its 500 handler, and nothing of
        # the session is sent.
        if response.status_code == 500:
            return response
        for name, value in session.response_headers():
            response[name] = value
        return response
