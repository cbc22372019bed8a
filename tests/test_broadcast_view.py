"""``POST /broadcast/<session_id>``: the secret, every kind of bad body, and what reaches the group."""

import asyncio
import json

import pytest
from channels.layers import channel_layers, get_channel_layer
from django.test import AsyncClient

from realtime.live.consumers import session_group
from realtime.models import Session

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True)]

SECRET = "broadcast-secret-for-tests"


@pytest.fixture(autouse=True)
def broadcast_settings(settings):
    settings.SCS_BROADCAST_SECRET = SECRET
    channel_layers.backends = {}  # a fresh in-memory layer bound to this test's event loop
    yield settings
    channel_layers.backends = {}


@pytest.fixture
async def session_id():
    session = await Session.objects.acreate(purpose="broadcast view", created_by="tester")
    return session.id


class Group:
    """A channel in the session's group: what a watching consumer would receive."""

    def __init__(self, session_id):
        self.session_id = session_id
        self.layer = get_channel_layer()

    async def join(self):
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(session_group(self.session_id), self.channel)
        return self

    async def next(self):
        return await asyncio.wait_for(self.layer.receive(self.channel), 5)

    async def received_nothing(self):
        """True when nothing reached the group before a marker event sent now through the view."""
        marker = event(self.session_id, 424242, content="marker")
        response = await post(self.session_id, marker)
        assert response.status_code == 202, response.content
        first = await self.next()
        return [e["seq"] for e in first["events"]] == [424242]


@pytest.fixture
async def group(session_id):
    return await Group(session_id).join()


def event(session_id, seq, content="hello", **data):
    return {
        "type": "new_message",
        "session_id": session_id,
        "seq": seq,
        "data": {
            "id": seq, "sender": "alice", "sender_type": "claude", "content": content, "visibility": "public",
            "metadata": {}, "parent_message_id": None, "timestamp": "2026-01-01T00:00:00Z", **data,
        },
    }


async def post(session_id, body, secret=SECRET, raw=False, **headers):
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    data = body if raw else json.dumps(body)
    return await AsyncClient().post(f"/broadcast/{session_id}", data, content_type="application/json",
                                    headers=headers)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]


async def test_one_event_is_accepted_and_group_sent(session_id, group):
    response = await post(session_id, event(session_id, 1))
    assert response.status_code == 202
    assert response.json() == {"success": True, "accepted": 1}
    message = await group.next()
    assert message["type"] == "session.events"
    assert [e["seq"] for e in message["events"]] == [1]
    assert message["events"][0]["data"]["content"] == "hello"


async def test_batch_is_accepted_with_its_count_in_seq_order(session_id, group):
    events = [event(session_id, seq) for seq in (3, 1, 2)]
    response = await post(session_id, {"events": events})
    assert response.status_code == 202
    assert response.json()["accepted"] == 3
    message = await group.next()
    assert [e["seq"] for e in message["events"]] == [1, 2, 3]


async def test_no_secret_is_401_and_nothing_is_delivered(session_id, group):
    assert_json_error(await post(session_id, event(session_id, 1), secret=None), 401, "AUTH_REQUIRED")
    assert await group.received_nothing()


@pytest.mark.parametrize("authorization", ["Basic abc", "Bearer", "Bearer ", "token " + SECRET])
async def test_malformed_authorization_is_401(session_id, group, authorization):
    response = await post(session_id, event(session_id, 1), secret=None, Authorization=authorization)
    assert_json_error(response, 401, "AUTH_REQUIRED")
    assert await group.received_nothing()


@pytest.mark.parametrize("secret", ["wrong", SECRET + "x", SECRET[:-1], "é" * 10])
async def test_wrong_secret_is_403_and_nothing_is_delivered(session_id, group, secret):
    assert_json_error(await post(session_id, event(session_id, 1, content="injected"), secret=secret), 403,
                      "FORBIDDEN")
    assert await group.received_nothing()


@pytest.mark.parametrize(
    "header", [{"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}]
)
async def test_a_request_relayed_by_a_proxy_is_refused_even_with_the_secret(session_id, group, header):
    # Behind a proxy on the same host every request comes from 127.0.0.1: the address proves nothing.
    assert_json_error(await post(session_id, event(session_id, 1, content="relayed"), **header), 403, "PROXIED")
    assert await group.received_nothing()


async def test_server_without_a_secret_refuses_everyone(session_id, group, settings):
    settings.SCS_BROADCAST_SECRET = ""
    assert_json_error(await post(session_id, event(session_id, 1), secret="anything"), 403, "FORBIDDEN")
    assert_json_error(await post(session_id, event(session_id, 1), secret=""), 401, "AUTH_REQUIRED")
    settings.SCS_BROADCAST_SECRET = SECRET
    assert await group.received_nothing()


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b"[" * 50_000 + b"]" * 50_000])
async def test_bad_json_is_400(session_id, group, body):
    assert_json_error(await post(session_id, body, raw=True), 400, "BAD_JSON")
    assert await group.received_nothing()


WRONG_SHAPES = {
    "list": lambda sid: [event(sid, 1)],
    "string": lambda sid: "new_message",
    "null": lambda sid: None,
    "empty events": lambda sid: {"events": []},
    "events not a list": lambda sid: {"events": {"0": event(sid, 1)}},
    "event not an object": lambda sid: {"events": [1]},
    "wrong type": lambda sid: {**event(sid, 1), "type": "presence"},
    "seq zero": lambda sid: event(sid, 0),
    "seq bool": lambda sid: event(sid, True),
    "seq string": lambda sid: event(sid, "1"),
    "seq float": lambda sid: event(sid, 1.0),
    "no data": lambda sid: {k: v for k, v in event(sid, 1).items() if k != "data"},
    "data missing a field": lambda sid: {**event(sid, 1), "data": {"content": "x"}},
    "content not a string": lambda sid: event(sid, 1, content=["x"]),
    "metadata not an object": lambda sid: event(sid, 1, metadata="x"),
    "one bad event in a batch": lambda sid: {"events": [event(sid, 1), event(sid, -1)]},
    "seq past a bigint": lambda sid: event(sid, 2**63),
    "id not an integer": lambda sid: event(sid, 1, id="42"),
    "parent not an id": lambda sid: event(sid, 1, parent_message_id=0),
    "unknown visibility": lambda sid: event(sid, 1, visibility="secret"),
    "empty timestamp": lambda sid: event(sid, 1, timestamp=""),
    "timestamp without a zone": lambda sid: event(sid, 1, timestamp="2026-01-01T00:00:00"),
    "impossible timestamp": lambda sid: event(sid, 1, timestamp="2026-13-01T00:00:00Z"),
    "unknown event field": lambda sid: {**event(sid, 1), "html": "<b>x</b>"},
    "unknown data field": lambda sid: event(sid, 1, html="<b>x</b>"),
    "batch with another field": lambda sid: {"events": [event(sid, 1)], "x": 1},
}


@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
async def test_wrong_shape_is_400_and_nothing_is_delivered(session_id, group, shape):
    assert_json_error(await post(session_id, WRONG_SHAPES[shape](session_id)), 400, "BAD_EVENT")
    assert await group.received_nothing()


async def test_event_for_another_session_is_400(session_id, group):
    other = await Session.objects.acreate(purpose="other", created_by="tester")
    response = await post(session_id, {"events": [event(session_id, 1), event(other.id, 2)]})
    assert_json_error(response, 400, "BAD_EVENT")
    assert "session_id" in response.json()["error"]
    assert await group.received_nothing()


@pytest.mark.parametrize("bad_id", ["nope", "session_XYZ", "session_0123456789abcdeF", "session_" + "0" * 17])
async def test_invalid_session_id_is_400(bad_id):
    assert_json_error(await post(bad_id, event(bad_id, 1)), 400, "INVALID_SESSION_ID")


async def test_invalid_session_id_without_secret_is_still_401():
    assert_json_error(await post("nope", {}, secret=None), 401, "AUTH_REQUIRED")


async def test_unknown_session_is_404():
    unknown = "session_00000000deadbeef"
    assert_json_error(await post(unknown, event(unknown, 1)), 404, "SESSION_NOT_FOUND")


async def test_body_over_the_setting_is_413(session_id, group, settings):
    settings.SCS_BROADCAST_MAX_BODY = 2_000
    assert_json_error(await post(session_id, event(session_id, 1, content="x" * 3_000)), 413, "TOO_LARGE")
    assert await group.received_nothing()


async def test_body_over_djangos_upload_limit_is_413_not_500(session_id, group, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    assert_json_error(await post(session_id, event(session_id, 1, content="x" * 20_000)), 413, "TOO_LARGE")
    assert await group.received_nothing()


async def test_too_many_events_is_413(session_id, group):
    from realtime.live.broadcast import MAX_EVENTS

    events = [event(session_id, seq, content="") for seq in range(1, MAX_EVENTS + 2)]
    assert_json_error(await post(session_id, {"events": events}), 413, "TOO_LARGE")
    assert await group.received_nothing()


async def test_get_is_405(session_id):
    response = await AsyncClient().get(f"/broadcast/{session_id}", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 405


async def test_post_needs_no_csrf_token(session_id):
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post(f"/broadcast/{session_id}", json.dumps(event(session_id, 1)),
                                 content_type="application/json", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 202


@pytest.mark.parametrize("body", [
    b"1", b"true", b'"x"', b"{}", b'{"events": null}', b'{"events": [null]}', b'{"events": [[]]}',
    b'{"type": "new_message", "seq": 99999999999999999999999999}', b'{"seq": {"$gt": 0}}', b"\x00",
    b'{"events": [{"type": "new_message"}]}', b"{\"a\": \"\\ud800\"}", b"1e999999",
])
async def test_odd_bodies_never_give_a_500(session_id, group, body):
    response = await post(session_id, body, raw=True)
    assert response.status_code in (400, 413), response.content
    assert response.json()["success"] is False
    assert await group.received_nothing()
