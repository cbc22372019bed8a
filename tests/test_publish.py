"""``realtime.publish``: host code stores, numbers and pushes messages like an agent, after commit."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from realtime import publish
from realtime.envelope import validate_event
from realtime.errors import OperationError
from realtime.live.consumers import session_group
from realtime.live.dashboard import DASHBOARD_GROUP
from tests.stack import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A throw-away channel in a session's group and the dashboard group of the in-memory layer."""

    def __init__(self, session_id):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(session_group(session_id), self.channel)
        async_to_sync(self.layer.group_add)(DASHBOARD_GROUP, self.channel)

    def take(self, wait=2.0):
        """The next message on the channel, or None when nothing is waiting within ``wait`` seconds."""
        async def receive():
            try:
                return await asyncio.wait_for(self.layer.receive(self.channel), wait)
            except TimeoutError:
                return None
        return async_to_sync(receive)()


class BroadcastTarget:
    """A loopback HTTP server standing in for Daphne's broadcast view; records what it is sent."""

    def __init__(self, status=202):
        self.requests = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                target.requests.append((self.path, self.headers["Authorization"], json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def via_channel_layer(settings):
    settings.SCS_PUBLISH_VIA = "channel_layer"


def test_a_published_message_is_numbered_after_the_sessions_last(via_channel_layer):
    session = publish.create_session("host work", created_by="billing")
    first = publish.add_message(session.id, "one", sender="billing", sender_type="job")
    second = publish.add_message(session.id, "two", metadata={"k": 1}, parent_message_id=first.id)
    assert (first.seq, second.seq) == (1, 2)
    assert (second.sender, second.sender_type, second.parent_id) == ("django", "system", first.id)
    session.refresh_from_db()
    assert session.last_seq == 2


def test_over_the_channel_layer_viewers_and_dashboard_get_the_event(via_channel_layer):
    session = publish.create_session("host work")
    receiver = Receiver(session.id)
    message = publish.add_message(session.id, "from a view", sender="ops", visibility="admin_only")
    to_viewers, to_dashboard = receiver.take(), receiver.take()
    assert to_viewers["type"] == "session.events"
    [event] = to_viewers["events"]
    assert validate_event(event, session.id) is None
    assert (event["seq"], event["data"]["id"], event["data"]["content"]) == (1, message.id, "from a view")
    assert event["data"]["visibility"] == "admin_only"
    assert to_dashboard["type"] == "dashboard.summary" and to_dashboard["session"]["id"] == session.id


def test_nothing_is_pushed_before_commit_or_after_rollback(via_channel_layer):
    session = publish.create_session("host work")
    receiver = Receiver(session.id)
    with transaction.atomic():
        publish.add_message(session.id, "pending")
        assert receiver.take(wait=0.2) is None
    assert receiver.take()["events"][0]["data"]["content"] == "pending"
    receiver.take()  # its dashboard summary
    with pytest.raises(RuntimeError), transaction.atomic():
        publish.add_message(session.id, "rolled back")
        raise RuntimeError("the host's work failed")
    assert receiver.take(wait=0.2) is None


def test_over_http_the_event_is_posted_under_the_mount_prefix(settings):
    settings.SCS_PUBLISH_VIA = "http"
    settings.SCS_BROADCAST_SECRET = "a-broadcast-secret-for-tests"
    session = publish.create_session("host work")
    with BroadcastTarget() as target:
        settings.SCS_BROADCAST_URL = target.url + "/agents/"
        message = publish.add_message(session.id, "from a worker", sender="celery")
    [(path, authorization, body)] = target.requests
    assert path == f"/agents/broadcast/{session.id}"
    assert authorization == "Bearer a-broadcast-secret-for-tests"
    assert validate_event(body, session.id) is None
    assert (body["seq"], body["data"]["id"], body["data"]["sender"]) == (1, message.id, "celery")


def test_when_daphne_is_unreachable_the_message_is_kept_and_the_log_says_what_to_check(settings, caplog):
    settings.SCS_PUBLISH_VIA = "http"
    settings.SCS_BROADCAST_URL = f"http://127.0.0.1:{free_port()}/agents"
    session = publish.create_session("host work")
    message = publish.add_message(session.id, "nobody listens")
    assert message.pk is not None and message.seq == 1
    assert "SCS_BROADCAST_URL" in caplog.text and "/agents/broadcast/" in caplog.text


def test_with_several_daphnes_listed_the_first_that_accepts_gets_the_event(settings):
    settings.SCS_PUBLISH_VIA = "http"
    session = publish.create_session("host work")
    with BroadcastTarget(status=503) as busy, BroadcastTarget() as ready:
        settings.SCS_BROADCAST_URL = f"http://127.0.0.1:{free_port()}, {busy.url}/agents, {ready.url}/agents/"
        publish.add_message(session.id, "to whichever answers")
    assert [path for path, _, _ in busy.requests] == [f"/agents/broadcast/{session.id}"]
    assert [body["data"]["content"] for _, _, body in ready.requests] == ["to whichever answers"]


def test_a_refused_push_names_the_secret(settings, caplog):
    settings.SCS_PUBLISH_VIA = "http"
    session = publish.create_session("host work")
    with BroadcastTarget(status=403) as target:
        settings.SCS_BROADCAST_URL = target.url
        publish.add_message(session.id, "wrong secret")
    assert len(target.requests) == 1
    assert "HTTP 403" in caplog.text and "SCS_BROADCAST_SECRET" in caplog.text


@pytest.mark.parametrize(
    ("via", "backend", "expected"),
    [
        ("auto", "channels.layers.InMemoryChannelLayer", "http"),
        ("auto", "channels_redis.core.RedisChannelLayer", "channel_layer"),
        ("auto", "channels_redis.pubsub.RedisPubSubChannelLayer", "channel_layer"),
        ("http", "channels_redis.core.RedisChannelLayer", "http"),
        ("channel_layer", "channels.layers.InMemoryChannelLayer", "channel_layer"),
    ],
)
def test_publish_via(settings, via, backend, expected):
    settings.SCS_PUBLISH_VIA = via
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}
    assert publish.publish_via() == expected


def test_an_unknown_publish_via_is_a_configuration_error(settings):
    settings.SCS_PUBLISH_VIA = "carrier-pigeon"
    with pytest.raises(ImproperlyConfigured, match="SCS_PUBLISH_VIA"):
        publish.publish_via()


def test_bad_input_raises_the_same_errors_as_the_mcp_tool(via_channel_layer):
    with pytest.raises(OperationError) as bad_id:
        publish.add_message("not-a-session", "text")
    assert bad_id.value.code == "INVALID_SESSION_ID"
    session = publish.create_session("host work")
    with pytest.raises(OperationError) as empty:
        publish.add_message(session.id, "   ")
    assert empty.value.code == "INVALID_CONTENT"
