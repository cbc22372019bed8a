"""WebSocket routes for a ``ProtocolTypeRouter``, under ``SCS_WS_PREFIX`` (e.g. ``agents/ws/<session_id>/``).

The pages build their WebSocket URLs from the same setting, so set the prefix
there rather than nesting these routes under another ``URLRouter`` path.
"""

import re

from django.urls import re_path

from realtime import conf
from realtime.consumers import DashboardConsumer, SessionConsumer

_root = "^" + re.escape(conf.ws_prefix())

websocket_urlpatterns = [
    # Before the session route, which would otherwise take "dashboard" for a session id.
    re_path(_root + r"ws/dashboard/$", DashboardConsumer.as_asgi()),
    re_path(_root + r"ws/(?P<session_id>[^/]{1,64})/$", SessionConsumer.as_asgi()),
]
