"""The shared encodings of sessionproxy's adapters (CONTRACT.md section 13).

Framework attribute names are arbitrary strings and header names are not,
so a name keeps its lowercase letters and digits and writes every other
byte of its UTF-8 form as ``-`` plus two lowercase hex digits
(``pojun.tech`` -> ``pojun-2etech``, ``userId`` -> ``user-49d``). Reading
treats ``_`` as ``-`` and ignores case, because CGI and WSGI fold both.

A value is JSON text with every byte outside printable ASCII (0x20-0x7E)
and ``%`` itself percent-encoded, so that any Unicode text survives a
header and every language reads the same types. Reading never fails: an
invalid escape stays literal, and what is then not valid JSON (written by a
backend without an adapter) is a plain string.
"""
import base64
import json
import secrets

__all__ = [
    "MAX_NAME_LEN", "encode_name", "decode_name", "encode_value",
    "decode_value", "new_id",
]

#: The proxy's longest attribute name (CONTRACT.md section 3).
MAX_NAME_LEN = 200

_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def encode_name(name):
    """Return the header form of the attribute name ``name`` (a str).

    Raises ValueError if the result is empty or longer than the proxy
    takes: the proxy would refuse the whole update.
    """
    out = []
    for b in name.encode("utf-8", "surrogateescape"):
        out.append(chr(b) if b in _KEEP else "-%02x" % b)
    enc = "".join(out)
    if not enc or len(enc) > MAX_NAME_LEN:
        raise ValueError(
            "session attribute name %r encodes to %d characters; "
            "sessionproxy takes 1 to %d" % (name, len(enc), MAX_NAME_LEN))
    return enc


def decode_name(text):
    """Return the attribute name that the header name ``text`` encodes.

    ``_`` is read as ``-`` and case is ignored; ``-`` plus two hex digits
    is that byte, and anything else is literal. Never raises.
    """
    raw = text.replace("_", "-").lower().encode("utf-8", "surrogateescape")
    return _unescape(raw, ord("-")).decode("utf-8", "surrogateescape")


def encode_value(value):
    """Return the header form of ``value``: JSON, percent-encoded.

    Raises TypeError for what JSON cannot hold, as Django's JSON session
    serializer does.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    out = []
    for b in text.encode("utf-8"):
        out.append(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else "%%%02X" % b)
    return "".join(out)


def decode_value(text):
    """Return the value that the header value ``text`` holds. Never raises.

    ``text`` is a str as WSGI gives header values (each byte one Latin-1
    character) or bytes. A value that is not JSON once percent-decoded is
    returned as that plain string.
    """
    if isinstance(text, str):
        text = text.encode("latin-1", "replace")
    raw = _unescape(bytes(text), ord("%"))
    plain = raw.decode("utf-8", "replace")
    try:
        return json.loads(plain)
    except (ValueError, RecursionError):  # not JSON, or nested too deep
        return plain


def new_id():
    """Draw a session ID in the proxy's shape (CONTRACT.md section 4):
    128 bits from the OS's CSPRNG, 22 unpadded URL-safe base64 characters.
    """
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def _unescape(raw, mark):
    """Replace each ``mark`` followed by two hex digits in ``raw`` by the
    byte they spell; any other ``mark`` stays literal."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == mark and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(b)
        i += 1
    return bytes(out)
