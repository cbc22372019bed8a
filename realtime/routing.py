"""Channels routes for a ``ProtocolTypeRouter``, under ``SCS_WS_PREFIX`` (e.g. ``agents/ws/<session_id>/``).

``from realtime.routing import websocket_urlpatterns, http_urlpatterns`` builds them
when imported (after settings are loaded), not when this module is: the prefix is
the one in settings at that moment. The pages build their WebSocket URLs from the
same setting, so set the prefix there rather than nesting these routes under
another ``URLRouter`` path. Wrap the WebSocket routes in
``realtime.live.auth.ViewerAuthMiddleware`` (agent tokens, and people by Channels' ``AuthMiddlewareStack``).
"""

import re

from django.urls import re_path

from realtime import conf


def _root():
    return "^" + re.escape(conf.ws_prefix())


def websocket_routes():
    """The session, dashboard, memory and wake-relay WebSocket routes under the current ``SCS_WS_PREFIX``."""
    from realtime.live.consumers import DashboardConsumer, SessionConsumer
    from realtime.live.memory_consumer import MemoryConsumer
    from realtime.live.wake_relay import WakeRelayConsumer

    return [
        # Before the session route, which would otherwise take "dashboard", "memory" or "wake" for a session id.
        re_path(_root() + r"ws/dashboard/$", DashboardConsumer.as_asgi()),
        re_path(_root() + r"ws/memory/$", MemoryConsumer.as_asgi()),
        re_path(_root() + r"ws/wake/$", WakeRelayConsumer.as_asgi()),
        re_path(_root() + r"ws/(?P<session_id>[^/]{1,64})/$", SessionConsumer.as_asgi()),
    ]


def http_routes():
    """HTTP routes served by Channels ahead of Django: the broadcast door (one target, and several).

    Route them before the Django app, e.g. ``"http": URLRouter([*http_urlpatterns,
    re_path(r"", django_asgi_app)])``. Where they are not routed, the same door
    answers through Django (``realtime.urls``).
    """
    from realtime.live.broadcast import BroadcastConsumer

    return [re_path(_root() + r"broadcast/(?P<session_id>[^/]{1,64})$", BroadcastConsumer.as_asgi()),
            re_path(_root() + r"broadcast/$", BroadcastConsumer.as_asgi())]


def __getattr__(name):
    """``websocket_urlpatterns`` and ``http_urlpatterns``, built on use rather than at import."""
    if name == "websocket_urlpatterns":
        return websocket_routes()
    if name == "http_urlpatterns":
        return http_routes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
