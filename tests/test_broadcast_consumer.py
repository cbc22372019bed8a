"""The broadcast door as served by Daphne: a Channels HTTP consumer routed ahead of Django."""

import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import HttpCommunicator

from project.asgi import application
from realtime.live.groups import session_group
from realtime.models import Session
from tests.test_broadcast_view import SECRET, event

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("fresh_channel_layer")]


@pytest.fixture(autouse=True)
def broadcast_settings(settings):
    settings.SCS_BROADCAST_SECRET = SECRET
    return settings


async def call(path, body=b"", method="POST", secret=SECRET, client="127.0.0.1", headers=()):
    headers = [*headers, *([(b"authorization", f"Bearer {secret}".encode())] if secret else [])]
    communicator = HttpCommunicator(application, method, path, body=body, headers=headers)
    communicator.scope["client"] = [client, 50000]
    response = await communicator.get_response()
    return response["status"], json.loads(response["body"]), dict(response["headers"])


async def test_an_event_is_group_sent_and_answered_202():
    session = await Session.objects.acreate(purpose="consumer door", created_by="tester")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(session_group(session.id), channel)
    status, body, headers = await call(f"/broadcast/{session.id}", json.dumps(event(session.id, 1)).encode())
    assert (status, body) == (202, {"success": True, "accepted": 1})
    assert headers[b"Content-Type"] == b"application/json"
    received = await layer.receive(channel)
    assert received["type"] == "session.events" and [e["seq"] for e in received["events"]] == [1]
    assert json.loads(received["texts"][0]) == received["events"][0]  # encoded once, for every viewer


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"secret": None}, 401, "AUTH_REQUIRED"),
        ({"secret": "wrong"}, 403, "FORBIDDEN"),
        ({"client": "203.0.113.9"}, 403, "FORBIDDEN_CLIENT"),
        ({"headers": [(b"x-forwarded-for", b"127.0.0.1")]}, 403, "PROXIED"),
        ({"headers": [(b"X-Real-IP", b"127.0.0.1")]}, 403, "PROXIED"),
        ({"headers": [(b"forwarded", b"for=127.0.0.1")]}, 403, "PROXIED"),
        ({"body": b"{not json"}, 400, "BAD_JSON"),
        ({"method": "GET"}, 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_bad_requests_are_refused_with_json(kwargs, status, code):
    session = await Session.objects.acreate(purpose="consumer door", created_by="tester")
    body = kwargs.pop("body", json.dumps(event(session.id, 1)).encode())
    answer_status, answer, headers = await call(f"/broadcast/{session.id}", body, **kwargs)
    assert (answer_status, answer["success"], answer["code"]) == (status, False, code)
    if status == 405:
        assert headers[b"Allow"] == b"POST"


async def test_an_unknown_session_is_404():
    unknown = "session_0123456789abcdef"
    status, body, _ = await call(f"/broadcast/{unknown}", json.dumps(event(unknown, 1)).encode())
    assert (status, body["code"]) == (404, "SESSION_NOT_FOUND")


async def test_other_paths_still_reach_django():
    communicator = HttpCommunicator(application, "GET", "/health", headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response()
    assert response["status"] == 200 and json.loads(response["body"])["status"] == "ok"
