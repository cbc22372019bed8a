import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.hostproject.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.live import daphne_limits  # noqa: E402
from realtime.live.auth import ViewerAuthMiddleware  # noqa: E402
from realtime.live.origins import ExactOriginValidator  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

daphne_limits.install()  # bounded unsent bytes per WebSocket and request body size under Daphne

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": ExactOriginValidator(ViewerAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
