"""Graceful degradation with real processes: Daphne stopped or hung never blocks ``add_message``.

Viewers that reconnect with ``since`` recover everything by seq; the sidecar's
``/health`` says what the bridge retried. That ``add_message`` does not wait on a
hung Daphne is shown by order, not by a clock: calls return while the bridge's
request to the hung Daphne is still pending (``bench/e2e.py`` measures the latency).
The bridge's batch splitting runs against a real HTTP server on a free port that
records what it receives.
"""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from realtime.broadcast_client import MAX_BODY_BYTES, BroadcastClient
from realtime.publisher import Publisher
from realtime.strategies import HttpStrategy
from tests.helpers import eventually, new_session

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def add(agent, session_id, content):
    """add_message, asserting it succeeds; returns the seq."""
    result = await agent.call("add_message", session_id=session_id, content=content)
    assert result["success"], result
    return result["seq"]


async def bridge_until(stack, predicate, within=15.0):
    """Poll the sidecar's /health until ``predicate(bridge stats)``; return the stats."""
    deadline = time.monotonic() + within
    while True:
        stats = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
        if predicate(stats):
            return stats
        assert time.monotonic() < deadline, f"bridge never reached the expected state: {stats}"
        await asyncio.sleep(0.05)


def drained(stats):
    return stats["queue_depth"] == 0 and stats["inflight"] == 0


class Counters:
    """The bridge's counters relative to the start of one test (the module shares one stack)."""

    def __init__(self, stack):
        self.stack = stack
        self.base = stack.sidecar_health()["bridge"]

    def delta(self, stats):
        return {k: v - self.base[k] for k, v in stats.items() if isinstance(v, int) and k in self.base}

    async def until(self, predicate, within=15.0):
        """Poll until ``predicate(stats, delta)``; return the delta (with last_error)."""
        stats = await bridge_until(self.stack, lambda s: predicate(s, self.delta(s)), within)
        return {**self.delta(stats), "last_error": stats["last_error"], "drained": drained(stats)}


@pytest.fixture
def daphne_back(stack):
    """The module's stack, with Daphne running again after the test whatever happened."""
    yield stack
    stack.resume_daphne()
    if stack.daphne.poll() is not None:
        stack.start_daphne()


async def test_daphne_stopped_then_restarted(daphne_back):
    stack = daphne_back
    counters = Counters(stack)
    async with await stack.agent("writer") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as before:
            await before.wait_caught_up()
            for n in range(1, 4):
                assert await add(agent, session_id, f"before {n}") == n
            await before.wait_for_seq(3)
            await asyncio.to_thread(stack.stop_daphne)
            await before.wait_closed()

        for n in range(4, 24):
            assert await add(agent, session_id, f"while down {n}") == n
        down = await counters.until(lambda s, d: d["failed_attempts"] > 0 and d["retried"] > 0)
        assert not down["drained"] and "posting to" in down["last_error"]

        await asyncio.to_thread(stack.start_daphne)
        async with stack.watcher(session_id, token=agent.token, since=before.seqs[-1]) as after:
            await after.wait_caught_up()
            assert await add(agent, session_id, "after return") == 24
            await after.wait_for_seq(24)
            done = await counters.until(lambda s, d: drained(s) and d["sent"] >= 24)
            # Anything the bridge re-sends now is older than what the watcher has: never shown twice.
            assert await add(agent, session_id, "last") == 25
            await after.wait_for_seq(25)
        assert before.seqs == [1, 2, 3]
        assert after.seqs == list(range(4, 26))
        assert [m["data"]["content"] for m in after.messages][:2] == ["while down 4", "while down 5"]
    assert done["dropped"] == 0 and done["rejected"] == 0
    assert done["retried"] >= down["retried"] > 0


async def test_daphne_hung_then_resumed(daphne_back):
    stack = daphne_back
    counters = Counters(stack)
    async with await stack.agent("writer") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as live:
            await live.wait_caught_up()
            for n in range(1, 4):
                await add(agent, session_id, f"before {n}")
            await live.wait_for_seq(3)

            stack.pause_daphne()
            written = 4
            assert await add(agent, session_id, f"while hung {written}") == written
            # It returned while the bridge's request to the hung Daphne is still pending (it fails only
            # after the bridge's 5 s timeout): the call did not wait on Daphne.
            pending = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
            assert counters.delta(pending)["failed_attempts"] == 0 and not drained(pending), pending
            # Keep writing until the bridge's request to the hung Daphne has timed out
            # (the bridge timeout, 5 s): every call succeeds meanwhile.
            deadline = time.monotonic() + 15
            while True:
                written += 1
                assert await add(agent, session_id, f"while hung {written}") == written
                hung = counters.delta((await asyncio.to_thread(stack.sidecar_health))["bridge"])
                if hung["failed_attempts"] > 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            stats = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
            assert hung["failed_attempts"] > 0 and "Timeout" in stats["last_error"], stats
            assert not drained(stats)
            assert live.seqs == [1, 2, 3]  # nothing could reach it while Daphne was stopped
            stack.resume_daphne()

            # The connection survived the hang and now receives the backlog, each once, in order.
            await live.wait_for_seq(written, timeout=15)
            async with stack.watcher(session_id, token=agent.token, since=3) as resumed:
                await resumed.wait_for_seq(written)
                written += 1
                assert await add(agent, session_id, "after resume") == written
                await resumed.wait_for_seq(written)
                await live.wait_for_seq(written)
            assert live.seqs == list(range(1, written + 1))
            assert resumed.seqs == list(range(4, written + 1))
    done = await counters.until(lambda s, d: drained(s) and d["sent"] >= written)
    assert done["retried"] > 0 and done["dropped"] == 0 and done["rejected"] == 0


async def test_large_backlog_after_a_hang_reaches_the_connected_viewer(daphne_back):
    """A backlog bigger than one request body may be (Django reads at most 2.5 MB) is still delivered."""
    stack = daphne_back
    counters = Counters(stack)
    big = "y" * 95_000
    async with await stack.agent("bulk-writer") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as live:
            await live.wait_caught_up()
            assert await add(agent, session_id, "before") == 1
            await live.wait_for_seq(1)
            stack.pause_daphne()
            for n in range(2, 33):
                result = await agent.call("add_message", session_id=session_id, content=f"{n} {big}")
                assert result["success"] and result["seq"] == n, result
            stack.resume_daphne()
            # No newer message arrives to reveal a hole: the backlog itself must get through.
            try:
                await live.wait_for_seq(32, timeout=20)
            except TimeoutError:
                pytest.fail(f"the backlog did not arrive: seqs {live.seqs}, bridge {stack.sidecar_health()['bridge']}")
            assert live.seqs == list(range(1, 33))
    done = await counters.until(lambda s, d: drained(s) and d["sent"] >= 32)
    assert done["rejected"] == 0 and done["dropped"] == 0


class RecordingDaphne(BaseHTTPRequestHandler):
    """Answers every broadcast to several targets 202 and notes each body's size and (target, seq) pairs in
    ``server.posted``."""

    def do_POST(self):
        content = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(content)
        assert self.path == "/broadcast/", self.path
        self.server.posted.append((len(content), [(batch["target"], event["seq"]) for batch in body["batches"]
                                                  for event in batch["events"]]))
        answer = b'{"success": true}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def recording_daphne():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingDaphne)
    server.posted = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_bridge_splits_a_batch_too_big_for_one_request_and_keeps_order(recording_daphne):
    host, port = recording_daphne.server_address
    bridge = Publisher(HttpStrategy(BroadcastClient(f"http://{host}:{port}", "secret")), mark=None, sweep=None)
    sessions = ("session_00000000000000aa", "session_00000000000000bb")
    await bridge.start()
    try:
        for seq in range(1, 41):  # queued together, as after an outage: 2 x 40 x 95 kB in one batch
            for session_id in sessions:
                bridge._enqueue({"type": "new_message", "session_id": session_id, "seq": seq,
                                 "data": {"content": "z" * 95_000}})
        await eventually(lambda: bridge.counters["sent"] >= 80 or bridge.counters["rejected"], 20,
                         "every event sent")
    finally:
        await bridge.stop()
    posted = recording_daphne.posted
    for session_id in sessions:
        assert [seq for _, pairs in posted for target, seq in pairs if target == session_id] == list(range(1, 41))
    assert all(size <= MAX_BODY_BYTES for size, _ in posted)
    assert len(posted) < 80  # still batched, just not beyond the size bound
    assert bridge.counters["sent"] == 80 and bridge.counters["rejected"] == 0
