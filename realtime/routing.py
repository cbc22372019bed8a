"""Channels routes for a ``ProtocolTypeRouter``, under ``SCS_WS_PREFIX`` (e.g. ``agents/ws/<session_id>/``).

The pages build their WebSocket URLs from the same setting, so set the prefix
there rather than nesting these routes under another ``URLRouter`` path.
"""

import re

from django.urls import re_path

from realtime import conf
from realtime.live.broadcast import BroadcastConsumer
from realtime.live.consumers import DashboardConsumer, SessionConsumer

_root = "^" + re.escape(conf.ws_prefix())

websocket_urlpatterns = [
    # Before the session route, which would otherwise take "dashboard" for a session id.
    re_path(_root + r"ws/dashboard/$", DashboardConsumer.as_asgi()),
    re_path(_root + r"ws/(?P<session_id>[^/]{1,64})/$", SessionConsumer.as_asgi()),
]

# HTTP routes served by Channels ahead of Django: route them before the Django app, e.g.
# ``"http": URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)])``. Where they are not
# routed, the same door answers through Django (``realtime.urls``).
http_urlpatterns = [
    re_path(_root + r"broadcast/(?P<session_id>[^/]{1,64})$", BroadcastConsumer.as_asgi()),
]
