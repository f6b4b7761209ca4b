"""sessionproxy_adapters: Flask and Django sessions kept by sessionproxy.

An app behind sessionproxy keeps its framework's own session API; these
adapters read the session from the proxy's X-Session-* request headers and
hand its changes back as X-Session-* response headers (CONTRACT.md
section 13):

- Flask: ``app.session_interface = SessionProxyInterface()``
  (``sessionproxy_adapters.flask``);
- Django: ``sessionproxy_adapters.django.SessionMiddleware`` in place of
  ``django.contrib.sessions.middleware.SessionMiddleware``.

The codec (``sessionproxy_adapters.codec``) is shared by both, and needs
nothing beyond the standard library.
"""
__version__ = "0.1.0"
