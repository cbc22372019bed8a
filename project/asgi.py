"""ASGI entry point: Django for HTTP, the session consumer for WebSockets (users by session, agents by token)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from .connections import close_after_each_request  # noqa: E402

# Connections are kept between calls on Channels' reused threads; a Django request's own thread ends with it.
close_after_each_request()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from realtime.live import daphne_limits  # noqa: E402
from realtime.live.auth import ViewerAuthMiddleware  # noqa: E402
from realtime.live.origins import ExactOriginValidator  # noqa: E402
from realtime.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402

# A viewer that stops reading is dropped (it resumes by seq); an oversized body is refused unread.
daphne_limits.install()

application = ProtocolTypeRouter(
    {
        # The broadcast door is a Channels consumer ahead of Django: see realtime.live.broadcast.
        "http": URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)]),
        "websocket": ExactOriginValidator(ViewerAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
