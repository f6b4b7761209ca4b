"""The session as the proxy hands it to a WSGI app, and its changes as
the response headers the proxy applies (CONTRACT.md section 3).

Both adapters use this module: it knows headers and encodings, not
frameworks.
"""
from .codec import decode_name, decode_value, encode_name, encode_value

__all__ = ["DEFAULT_MAX_SIZE", "MAX_AGE_LIMIT", "Incoming", "SessionTooLarge", "check_size",
           "max_age_header", "read_environ", "response_headers", "stored_size"]

# The longest X-Session-Max-Age the proxy takes: 400 days, in seconds
# (CONTRACT.md section 16). Longer is sent as this.
MAX_AGE_LIMIT = 400 * 24 * 3600

# The proxy's default session.max_size, in bytes of its stored encoding.
DEFAULT_MAX_SIZE = 64 * 1024

# The least the proxy's stored encoding of a session spends besides its
# attributes: format and flags (2 bytes), version (at least 1), creation
# time in unix ms (6 bytes until the year 2109), last use in unix s (5),
# attribute count (at least 1). The proxy also spends 5 on the expiry and
# more on a larger version or count, so a size counted with this is never
# above the proxy's: the adapters refuse no session that the proxy would
# store (sessionstore's AppendEncode).
SIZE_OVERHEAD = 15


class SessionTooLarge(ValueError):
    """The session is larger than the proxy's max_size: the proxy would
    refuse it, so nothing of this request's changes is sent."""


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

    __slots__ = ("sid", "new", "created", "attrs", "wire", "raw")

    def __init__(self, sid=None, new=True, created=None, attrs=None, raw=None):
        self.sid, self.new, self.created = sid, new, created
        self.attrs = attrs if attrs is not None else {}
        # Stored name to the byte length of its value as the proxy sent it.
        self.raw = raw if raw is not None else {}
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
    attrs, raw = {}, {}
    for key, value in environ.items():
        if key.startswith(_ATTR) and len(key) > len(_ATTR):
            attrs[decode_name(key[len(_ATTR):])] = decode_value(value)
            # WSGI gives header bytes as Latin-1: a character is a byte.
            raw[key[len(_ATTR):].lower().replace("_", "-")] = len(value)
    new = environ.get("HTTP_X_SESSION_NEW") == "1" or sid is None
    return Incoming(sid, new, created, attrs, raw)


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


def max_age_header(seconds):
    """Return the X-Session-Max-Age header, as a (name, value) pair, that
    gives the session its own idle lifetime of ``seconds`` and a persistent
    cookie ("remember me"); 0 or None go back to the proxy's ttl and a
    session cookie. The proxy keeps it with the session until changed."""
    seconds = int(seconds or 0)
    return ("X-Session-Max-Age", str(min(max(seconds, 0), MAX_AGE_LIMIT)))


def _uvarint_len(n):
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


def stored_size(incoming, headers):
    """Return the size, at least, of the proxy's stored encoding of the
    session that the response ``headers`` (response_headers') make of
    ``incoming``, or None when they set nothing (no update whose size the
    proxy could refuse)."""
    sizes, sets = ({} if any(n == "X-Session-Invalidate" for n, _ in headers)
                   else dict(incoming.raw)), 0
    for name, value in headers:
        if name.startswith("X-Session-Set-"):
            sizes[name[len("X-Session-Set-"):]] = len(value)
            sets += 1
        elif name == "X-Session-Unset":
            for n in value.split(", "):
                sizes.pop(n, None)
    if not sets:
        return None
    return SIZE_OVERHEAD + sum(_uvarint_len(len(n)) + len(n) + _uvarint_len(v) + v
                               for n, v in sizes.items())


def check_size(incoming, headers, max_size):
    """Raise SessionTooLarge if the session the response ``headers`` make
    of ``incoming`` is over ``max_size`` bytes (0 or None: no check; the
    proxy still refuses it with a 502)."""
    if not max_size:
        return
    size = stored_size(incoming, headers)
    if size is not None and size > max_size:
        raise SessionTooLarge(
            "sessionproxy: the session is %d bytes, over the proxy's max_size of %d; "
            "it was not saved" % (size, max_size))


def _wire(value):
    try:
        return encode_value(value)
    except (TypeError, ValueError):  # cannot happen for decoded JSON
        return None
