"""The session as the proxy hands it to a WSGI app, and its changes as
the response headers the proxy applies (CONTRACT.md section 3).

Both adapters use this module: it knows headers and encodings, not
frameworks.
"""
from .codec import decode_name, decode_value, encode_name, encode_value

__all__ = ["Incoming", "read_environ", "response_headers"]

# A WSGI server gives X-Session-Attr-<name> as HTTP_X_SESSION_ATTR_<NAME>,
# with - turned into _ and letters upper-cased: the name encoding reads
# both back (codec.decode_name).
_ATTR = "HTTP_X_SESSION_ATTR_"


class Incoming(object):
    """What the proxy said about a request's session.

    ``sid`` is the session ID (None when the request did not come through
    the proxy, or its path is one the proxy ignores); ``new`` is true when
    this request started the session; ``created`` is its creation time in
    unix milliseconds (or None); ``attrs`` maps each attribute name to its
    decoded value, and ``wire`` to its value as this adapter would write
    it, so that only what changed is written back.
    """

    __slots__ = ("sid", "new", "created", "attrs", "wire")

    def __init__(self, sid=None, new=True, created=None, attrs=None):
        self.sid, self.new, self.created = sid, new, created
        self.attrs = attrs if attrs is not None else {}
        self.wire = {}
        for name, value in self.attrs.items():
            self.wire[name] = _wire(value)


def read_environ(environ):
    """Return the Incoming session of the WSGI environ ``environ``."""
    sid = environ.get("HTTP_X_SESSION_ID") or None
    created = environ.get("HTTP_X_SESSION_CREATED")
    try:
        created = int(created) if created else None
    except ValueError:
        created = None
    attrs = {}
    for key, value in environ.items():
        if key.startswith(_ATTR) and len(key) > len(_ATTR):
            attrs[decode_name(key[len(_ATTR):])] = decode_value(value)
    return Incoming(sid, environ.get("HTTP_X_SESSION_NEW") == "1" or sid is None, created, attrs)


def response_headers(incoming, current, invalidate=False, rotate_to=None):
    """Return the X-Session-* response headers, as (name, value) pairs,
    that turn the ``incoming`` session into ``current`` (a mapping, or None
    when the app never looked at its session).

    With ``invalidate`` the session ends, and if ``current`` holds
    anything a new one holding it starts (the proxy gives it a new ID and
    cookie). ``rotate_to`` is an ID the app already uses for its session
    (codec.new_id): the session moves to it, or the new session takes it.
    Only changed attributes are written.
    """
    headers = []
    if invalidate:
        headers.append(("X-Session-Invalidate", "1"))
        for name, value in (current or {}).items():
            headers.append(("X-Session-Set-" + encode_name(name), encode_value(value)))
    elif current is not None:
        gone = [encode_name(n) for n in incoming.wire if n not in current]
        for name, value in current.items():
            enc = encode_value(value)
            if incoming.wire.get(name) != enc:
                headers.append(("X-Session-Set-" + encode_name(name), enc))
        if gone:
            headers.append(("X-Session-Unset", ", ".join(gone)))
    if rotate_to:
        headers.append(("X-Session-Rotate", rotate_to))
    return headers


def _wire(value):
    try:
        return encode_value(value)
    except (TypeError, ValueError):  # cannot happen for decoded JSON
        return None
