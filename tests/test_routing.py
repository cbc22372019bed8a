"""``realtime.routing``: the Channels routes, built under ``SCS_WS_PREFIX`` when used, not at import."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from realtime import routing
from realtime.live.auth import TokenAuthMiddleware
from realtime.live.broadcast import BroadcastConsumer
from realtime.live.closecodes import CLOSE_NOT_FOUND
from realtime.live.consumers import DashboardConsumer, SessionConsumer

SESSION = "session_0123456789abcdef"


def routed(patterns, path):
    """The consumer class ``path`` reaches through ``patterns`` (as URLRouter matches them), else None."""
    for route in patterns:
        if route.pattern.match(path):
            return route.callback.consumer_class
    return None


def test_importing_the_module_reads_no_settings():
    code = "import realtime.routing as r; print(callable(r.websocket_routes))"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("prefix", ["agents/", "/agents", "agents"])
def test_the_routes_follow_the_prefix_in_settings_when_imported(prefix):
    with override_settings(SCS_WS_PREFIX=prefix):
        from realtime.routing import http_urlpatterns, websocket_urlpatterns
    assert routed(websocket_urlpatterns, f"agents/ws/{SESSION}/") is SessionConsumer
    assert routed(websocket_urlpatterns, "agents/ws/dashboard/") is DashboardConsumer
    assert routed(websocket_urlpatterns, f"ws/{SESSION}/") is None
    assert routed(http_urlpatterns, f"agents/broadcast/{SESSION}") is BroadcastConsumer
    assert routed(http_urlpatterns, f"broadcast/{SESSION}") is None


def test_without_a_prefix_the_routes_start_at_the_root():
    with override_settings(SCS_WS_PREFIX=""):
        patterns = routing.websocket_urlpatterns
    assert routed(patterns, f"ws/{SESSION}/") is SessionConsumer
    assert routed(patterns, f"agents/ws/{SESSION}/") is None


def test_a_name_the_module_does_not_have_is_an_attribute_error():
    with pytest.raises(AttributeError, match="urlpatterns"):
        routing.urlpatterns  # noqa: B018


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.usefixtures("fresh_channel_layer")
async def test_a_connection_under_the_prefix_reaches_the_session_consumer():
    with override_settings(SCS_WS_PREFIX="agents/"):
        application = TokenAuthMiddleware(URLRouter(routing.websocket_urlpatterns))
    # An id that is not a session id is refused by the consumer itself, before any database read.
    comm = WebsocketCommunicator(application, "/agents/ws/not-a-session/")
    assert await comm.connect(timeout=3) == (False, CLOSE_NOT_FOUND)
    with pytest.raises(ValueError, match="No route found"):
        await WebsocketCommunicator(application, "/ws/not-a-session/").connect(timeout=3)
