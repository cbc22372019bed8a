"""Inputs at the edges: non-ASCII digits, NaN, far dates, expiring tokens, caller-chosen names."""

import asyncio
import math
import time
import types

import pytest
from django.contrib.auth import get_user_model

from mcp_sidecar.metrics import MAX_TOOLS, ToolMetrics
from realtime import memory, operations, search, tokens
from realtime.broadcast_client import BroadcastClient
from realtime.errors import OperationError
from realtime.live import consumers
from realtime.live.consumers import parse_since
from realtime.publisher import Publisher
from realtime.strategies import HttpStrategy
from tests.helpers import Viewer, agent_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


@pytest.mark.parametrize("value", ["²", "١٢", "1²", "", "-1", "1.5", True, 2**63])
def test_since_accepts_only_ascii_digits_and_in_range_integers(value):
    assert parse_since(value) is None


def test_since_accepts_plain_seqs():
    assert [parse_since("0"), parse_since("17"), parse_since(42)] == [0, 17, 42]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_superscript_since_is_refused_at_the_handshake():
    session = await asyncio.to_thread(operations.create_session, "edges", "tester")
    viewer = Viewer(session.id, bearer=agent_token(), query="?since=%C2%B2")
    connected, _ = await viewer.connect()
    assert connected is False


def test_load_earlier_refuses_a_superscript_seq(client):
    user = get_user_model().objects.create_user("member", password="pw-for-tests-only")
    client.force_login(user)
    session = operations.create_session("edges", "tester")
    response = client.get(f"/sessions/{session.id}/messages", {"before": "²"})
    assert response.status_code == 400


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_metadata_must_be_finite_json(number):
    session = operations.create_session("edges", "tester")
    with pytest.raises(OperationError) as refused:
        operations.add_message(session.id, sender="a", sender_type="claude", content="x", metadata={"n": number})
    assert refused.value.code == "INVALID_METADATA"
    for overwrite in (True, False):
        with pytest.raises(OperationError) as refused:
            memory.set_memory("a", "key", 1, metadata={"n": number}, overwrite=overwrite)
        assert refused.value.code == "INVALID_METADATA"
    assert session.messages.count() == 0


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_date_without_a_utc_equivalent_is_a_clear_error(value):
    with pytest.raises(OperationError) as refused:
        search.parse_time(value, "start_time")
    assert refused.value.code == "INVALID_DATETIME"


def test_metrics_stay_bounded_whatever_names_callers_invent():
    metrics = ToolMetrics()
    for n in range(MAX_TOOLS * 3):
        metrics.record(f"made-up-{n}", 0.001, ok=False)
    assert len(metrics.calls) == MAX_TOOLS + 1 and metrics.calls["<other>"] == MAX_TOOLS * 2


@pytest.mark.asyncio(loop_scope="function")
async def test_an_agent_websocket_closes_when_its_token_expires(monkeypatch):
    session = await asyncio.to_thread(operations.create_session, "edges", "tester")
    token, claims = tokens.issue("alice", "claude", ["read"], ttl=600)
    # The consumer's clock reads 0.2 s before the token's expiry: the close is due then, not in 10 minutes.
    clock = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    clock.time = lambda: claims.expires_at - 0.2
    monkeypatch.setattr(consumers, "time", clock)
    viewer = Viewer(session.id, bearer=token)
    connected, _ = await viewer.connect()
    assert connected
    await viewer.until("caught_up")  # open and served until then
    assert await viewer.until_closed(timeout=3) == 4401


@pytest.mark.asyncio(loop_scope="function")
async def test_the_publisher_keeps_running_with_a_malformed_broadcast_url():
    bridge = Publisher(HttpStrategy(BroadcastClient("http://127.0.0.1:80a", "secret")), backoff_start=0.01,
                       backoff_max=0.02, mark=None, sweep=None)
    await bridge.start()
    try:
        bridge.publish({"session_id": "session_0123456789abcdef", "seq": 1})
        for _ in range(100):
            if bridge.counters["failed_attempts"] >= 2:
                break
            await asyncio.sleep(0.01)
        assert bridge.counters["failed_attempts"] >= 2 and bridge.running
        assert bridge.stats()["last_error"].startswith("InvalidUrlClientError posting to http://127.0.0.1:80a/")
    finally:
        await bridge.stop(flush_timeout=0)


def test_messages_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/realtime/message/add/").status_code == 403
