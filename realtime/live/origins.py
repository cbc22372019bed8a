"""Which browser origins may open a WebSocket: scheme, host and port must equal an allowed origin.

``ExactOriginValidator`` wraps the WebSocket application, as Channels'
``OriginValidator`` does (its matching rules, given full origins), but reads the
allowed list when a connection arrives, not at import: ``SCS_ALLOWED_ORIGINS``, or
by default the server's own URLs (``http://<each ALLOWED_HOSTS entry>:<the port
this process serves the connection on>``, so each of several Daphne processes
allows its own pages) plus ``CSRF_TRUSTED_ORIGINS``. A refused handshake gets
HTTP 403.

A handshake with no ``Origin`` that carries the broadcast secret (``Authorization: Bearer``)
passes: that is a sidecar opening the wake relay (``realtime.live.wake_relay``), not a
browser, since browsers always send ``Origin``; the consumer checks the rest.
"""

from urllib.parse import urlparse, urlsplit

from django.conf import settings

from realtime import conf
from realtime.shared_secret import holds_secret


def parse_origin(value):
    """``scheme://host[:port]`` normalised (lower case, no trailing slash); ValueError saying why not."""
    text = str(value).strip().rstrip("/").lower()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port])") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an origin: use scheme://host[:port], e.g. https://example.com")
    if parts.username is not None or port == 0:
        raise ValueError(f"{value!r} is not an origin (no user name; a port from 1 to 65535)")
    if "*" in parts.hostname or parts.hostname.startswith("."):
        raise ValueError(f"{value!r}: origins are matched exactly, without wildcards")
    return text


def allowed_origins(scope=None):
    """The origins allowed now for a connection with this ASGI ``scope`` (see the module docstring)."""
    configured = conf.get("SCS_ALLOWED_ORIGINS")
    if configured:
        return [parse_origin(origin) for origin in configured]
    server = (scope or {}).get("server")  # (host, port) of the listening socket, where the server says
    port = server[1] if server and server[1] else conf.get("SCS_WS_PORT")
    hosts = [host for host in settings.ALLOWED_HOSTS if host and "*" not in host and not host.startswith(".")]
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        hosts = ["localhost", "127.0.0.1", "[::1]"]  # what Django itself allows then
    own = [f"http://{host}:{port}" for host in hosts]
    return [*own, *(origin for origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", []) if "*" not in origin)]


class ExactOriginValidator:
    """Channels' ``OriginValidator`` over ``allowed_origins()``, read per connection.

    It hands an allowed connection on and keeps nothing of it (an ASGI application that returns the inner
    one's coroutine rather than awaiting it in one of its own, as ``OriginValidator`` does): with 10,000
    connections open, each coroutine held for a connection's life is 3 MiB.
    """

    _asgi_single_callable = True  # for asgiref: a callable(scope, receive, send), though not a coroutine function

    def __init__(self, application):
        self.application = application

    def __call__(self, scope, receive, send):
        # Imported here: settings.py uses parse_origin while Django is not set up yet.
        from channels.security.websocket import OriginValidator, WebsocketDenier

        if scope["type"] != "websocket":
            raise ValueError(f"ExactOriginValidator guards WebSocket connections only, not {scope['type']!r}")
        headers = dict(scope.get("headers", ()))
        origin = headers.get(b"origin")
        if origin is None and holds_secret(headers.get(b"authorization", b"").decode("latin-1")):
            return self.application(scope, receive, send)
        try:
            parsed = None if origin is None else urlparse(origin.decode("latin-1"))
            allowed = OriginValidator(self.application, allowed_origins(scope)).valid_origin(parsed)
        except ValueError:  # an unclosed IPv6 bracket, a port out of range: refused like no origin
            allowed = False
        if allowed:
            return self.application(scope, receive, send)
        return WebsocketDenier()(scope, receive, send)
