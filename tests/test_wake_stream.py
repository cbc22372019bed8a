"""``realtime.wake_stream`` (what feeds the hub from other processes), ``realtime.live.wake_relay`` (Daphne's side)
and the hub's cap, in process. The same paths on real processes: ``tests/test_wait_e2e.py``."""

import asyncio
import json
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from realtime import operations, wake
from realtime.envelope import message_event
from realtime.errors import ErrorCode, OperationError
from realtime.live import delivery
from realtime.visibility import Viewer
from realtime.waiting import Follower
from realtime.wake_stream import WakeStream, relay_url
from tests.stack import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

SECRET = "wake-relay-secret"
BOB = Viewer.for_agent("bob", "claude", ("read", "write"))


@pytest.fixture(autouse=True)
def quiet(monkeypatch, settings):
    """No publisher sends; this process's own commits do not reach the hub: only a stream or the poll can."""
    from realtime import publisher

    settings.SCS_BROADCAST_SECRET = SECRET
    monkeypatch.setattr(publisher.get_publisher(), "publish", lambda event: None)
    monkeypatch.setattr(publisher.wake.hub, "notify", lambda events: None)


@sync_to_async(thread_sensitive=False)
def store(session_id, content):
    return operations.add_message(session_id, sender="alice", sender_type="claude", content=content,
                                  visibility="public")


@pytest.fixture
def session_id():
    return operations.create_session("waking", "alice").id


async def eventually(condition, within=5.0):
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_on_the_layer_the_stream_hands_every_delivery_to_the_hub(session_id):
    hub = wake.Hub()
    stream = WakeStream(hub, source="channel_layer", poll_interval=0)
    await stream.start()
    try:
        await eventually(lambda: stream.connected)
        with hub.session(session_id) as waiter:
            follower = Follower(BOB, session_id, 0, waiter)
            assert (await follower.next(0)).timed_out
            waiting = asyncio.ensure_future(follower.next(10))
            message = await store(session_id, "over the layer")
            assert await delivery.deliver_many([(session_id, [message_event(message)])]) == []
            batch = await waiting
        assert [r["content"] for r in batch.records] == ["over the layer"]
        assert stream.stats()["events"] == 1 and stream.stats()["source"] == "channel_layer"
    finally:
        await stream.stop()


async def test_the_safety_poll_wakes_a_waiter_whose_event_never_came_and_warns_once(session_id, caplog):
    hub = wake.Hub()
    # Nothing listens there: the stream keeps failing, and only the poll can wake the waiter.
    stream = WakeStream(hub, source="daphne", targets=[f"http://127.0.0.1:{free_port()}"], poll_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="realtime.wake_stream"):
        await stream.start()
        try:
            with hub.session(session_id) as waiter:
                follower = Follower(BOB, session_id, 0, waiter)
                assert (await follower.next(0)).timed_out
                waiting = asyncio.ensure_future(follower.next(10))
                await asyncio.sleep(0.2)
                assert not waiting.done() and stream.counters["poll_wakes"] == 0  # nothing moved: nobody woken
                await store(session_id, "missed by every stream")
                batch = await waiting
            assert [r["content"] for r in batch.records] == ["missed by every stream"]
            await eventually(lambda: stream.counters["failures"] >= 3)
            assert stream.counters["poll_wakes"] == 1 and not stream.connected
        finally:
            await stream.stop()
    warnings = [r for r in caplog.records if r.name == "realtime.wake_stream"]
    assert len(warnings) == 1 and "safety poll" in warnings[0].getMessage()


async def test_behind_wakes_only_the_waiters_that_know_less():
    hub = wake.Hub()
    with hub.session("session_aaaaaaaaaaaaaaaa") as ahead, hub.session("session_aaaaaaaaaaaaaaaa") as behind:
        ahead.saw(5)
        behind.saw(3)
        assert hub.behind({"session_aaaaaaaaaaaaaaaa": 5, "session_bbbbbbbbbbbbbbbb": 9}) == 1
        assert behind.take() == ([], True) and ahead.take() == ([], False)
        assert hub.behind({"session_aaaaaaaaaaaaaaaa": 5}) == 0  # told once is enough


async def test_the_hub_refuses_waiters_past_its_cap(settings):
    settings.SCS_MAX_WAITERS = 2
    hub = wake.Hub()
    with hub.session("session_aaaaaaaaaaaaaaaa"), hub.inbox("bob"):
        with pytest.raises(OperationError) as refused, hub.session("session_aaaaaaaaaaaaaaaa"):
            pass
        assert refused.value.code == ErrorCode.TOO_MANY_WAITERS and refused.value.hint
    with hub.session("session_aaaaaaaaaaaaaaaa"):  # the slots are free again
        assert hub.stats()["waiters"] == 1 and hub.stats()["refused"] == 1


def relay(secret=SECRET, origin=None, client=("127.0.0.1", 5000)):
    from project.asgi import application

    headers = [(b"authorization", f"Bearer {secret}".encode())] if secret else []
    if origin:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/wake/", headers=headers)
    communicator.scope["client"] = client
    return communicator


async def test_the_relay_forwards_each_delivery_to_a_sidecar_holding_the_secret(session_id):
    communicator = relay()
    connected, _ = await communicator.connect()
    assert connected
    message = await store(session_id, "relayed")
    assert await delivery.deliver_many([(session_id, [message_event(message)])]) == []
    frame = json.loads(await communicator.receive_from())
    assert frame == {"type": "events", "events": [message_event(message)]}
    await communicator.disconnect()


@pytest.mark.parametrize("attempt", [
    {"secret": None},  # no credential (and no Origin: refused as any such handshake is)
    {"secret": "wrong"},
    {"client": ("10.0.0.5", 5000)},  # not in SCS_BROADCAST_ALLOWED_IPS
    {"origin": b"http://evil.example"},  # a browser's handshake: the secret does not skip the origin check
])
async def test_the_relay_refuses_anyone_else(attempt):
    communicator = relay(**attempt)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


def test_the_relay_url_follows_the_broadcast_url():
    assert relay_url("http://127.0.0.1:8081") == "ws://127.0.0.1:8081/ws/wake/"
    assert relay_url("https://scs.example.com/agents") == "wss://scs.example.com/agents/ws/wake/"


async def test_while_the_stream_is_down_inbox_waiters_read_again_once_anything_was_stored(session_id):
    hub = wake.Hub()
    stream = WakeStream(hub, source="daphne", targets=[f"http://127.0.0.1:{free_port()}"], poll_interval=0.05)
    await stream.start()
    try:
        with hub.inbox("bob") as waiter:
            await eventually(lambda: waiter.stale)  # the first poll of an outage knows nothing: read once
            waiter.take()
            await asyncio.sleep(0.2)
            assert not waiter.stale  # nothing stored meanwhile: no read
            await store(session_id, "@bob are you there?")
            await eventually(lambda: waiter.stale)
    finally:
        await stream.stop()


async def test_every_connect_makes_the_waiters_read_what_they_may_have_missed(session_id):
    hub = wake.Hub()
    with hub.session(session_id) as waiter, hub.inbox("bob") as inbox:
        stream = WakeStream(hub, source="channel_layer", poll_interval=0)
        await stream.start()
        try:
            await eventually(lambda: waiter.stale and inbox.stale)
            assert stream.stats()["connects"] == 1
        finally:
            await stream.stop()
