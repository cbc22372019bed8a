"""Limits with the real processes: oversized input is refused cleanly, floods cannot grow memory.

Daphne runs with small limits so the tests stay fast: a viewer that stops
reading is dropped once 1 MiB waits for it, a request body over 1 MiB is
refused unread, and a WebSocket client may send 5 frames at once.
"""

import base64
import json
import os
import socket

import httpx
import pytest

from tests.helpers import eventually, new_session
from tests.stack import Stack

MAX_UNSENT = 1024 * 1024  # the smallest the setting allows
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("limits"), SCS_WS_MAX_BUFFER=MAX_UNSENT, SCS_HTTP_MAX_BODY=MAX_BODY,
                  SCS_WS_FRAME_RATE=1, SCS_WS_FRAME_BURST=5).start()
    yield stack
    stack.stop()


def open_non_reading_viewer(stack, session_id, token):
    """A WebSocket client that completes the handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills quickly
    sock.connect(("127.0.0.1", stack.ws_port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((
        f"GET /ws/{session_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.ws_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {stack.origin}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode())
    assert sock.recv(1024).startswith(b"HTTP/1.1 101")
    return sock


async def test_a_viewer_that_stops_reading_is_dropped_and_the_others_get_everything(limited):
    count, size = 90, 95_000  # 8.5 MB per viewer: past the kernel's socket buffers (up to 4 MB) and the limit
    async with await limited.agent("bulk-writer") as agent:
        session_id = await new_session(agent, "non-reading viewer")
        stalled = open_non_reading_viewer(limited, session_id, agent.token)
        try:
            async with limited.watcher(session_id, token=agent.token) as reader:
                await reader.wait_caught_up()
                for n in range(count):
                    result = await agent.call("add_message", session_id=session_id, content=f"{n:04d}" + "x" * size)
                    assert result["success"], result
                await reader.wait_for_seq(count, timeout=30)
                assert reader.seqs == list(range(1, count + 1))
            # The drop is logged when the next frame finds the buffer full.
            await eventually(lambda: f"unread (SCS_WS_MAX_BUFFER={MAX_UNSENT})" in limited.log("daphne"), 5,
                             "the drop in Daphne's log")
        finally:
            stalled.close()
        # The dropped viewer loses nothing: it resumes by seq.
        async with limited.watcher(session_id, token=agent.token, since=0) as resumed:
            await resumed.wait_for_seq(count, timeout=30)
            assert resumed.seqs == list(range(1, count + 1))


def test_an_oversized_body_is_refused_before_it_is_buffered(limited):
    url = f"{limited.http_url}/broadcast/session_0123456789abcdef"
    too_big = b"x" * (3 * MAX_BODY)
    declared = httpx.post(url, content=too_big, headers={"Authorization": "Bearer x"}, timeout=30)
    chunked = httpx.post(url, content=iter([too_big[:MAX_BODY], too_big[MAX_BODY:]]), timeout=30)
    login = httpx.post(f"{limited.http_url}/accounts/login/", content=too_big, timeout=30)
    assert declared.status_code == chunked.status_code == login.status_code == 413
    assert "refused a POST request body over" in limited.log("daphne")
    # Under the limit the view answers for itself.
    small = httpx.post(url, content=b"{}", headers={"Authorization": "Bearer x"}, timeout=10)
    assert small.status_code == 403


async def test_a_frame_flood_on_the_real_server_is_closed_4429(limited):
    async with await limited.agent("flooder") as agent:
        session_id = await new_session(agent, "flood")
        async with limited.watcher(session_id, token=agent.token) as flooder:
            await flooder.wait_caught_up()
            for _ in range(200):
                await flooder.send({"type": "ping"})
            await flooder.wait_closed()
        assert flooder.closed == 4429
        pongs = [f for f in flooder.frames if f["type"] == "pong"]
        assert 1 <= len(pongs) <= 6  # the burst (plus what refilled meanwhile), then the limit
        # The limit it broke, in the words of the stack's SCS_WS_FRAME_RATE=1.
        assert flooder.frames[-1] == {"type": "error", "code": "RATE_LIMITED", "error": "more than 1 frames per second"}


async def test_oversized_messages_metadata_and_purposes_are_refused_and_not_stored(limited):
    async with await limited.agent("big-writer") as agent:
        session_id = await new_session(agent, "limits")
        refusals = [
            await agent.call("add_message", session_id=session_id, content="x" * 100_001),
            await agent.call("add_message", session_id=session_id, content="ok", metadata={"k": "x" * 20_000}),
            await agent.call("create_session", purpose="p" * 1001),
            await agent.call("create_session", purpose="ok", metadata={"k": "x" * 20_000}),
            await agent.call("set_memory", key="big", value="x" * (300 * 1024)),
        ]
        for result in refusals:
            assert result["success"] is False and result["code"] and result["hint"], result
            assert "Traceback" not in json.dumps(result)
        assert [r["code"] for r in refusals] == ["INVALID_ARGUMENT", "METADATA_TOO_LARGE", "INVALID_ARGUMENT",
                                                 "METADATA_TOO_LARGE", "VALUE_TOO_LARGE"]
        stored = await agent.call("get_messages", session_id=session_id)
        assert stored["count"] == 0
        assert (await agent.call("get_memory", key="big"))["success"] is False


async def test_a_long_replay_to_a_reading_viewer_is_not_cut_by_the_limit(limited):
    count = 80  # 6.4 MB of replay, 6 times the unsent limit
    async with await limited.agent("replay-writer") as agent:
        session_id = await new_session(agent, "long replay")
        for n in range(count):
            assert (await agent.call("add_message", session_id=session_id, content=f"{n} " + "r" * 80_000))["success"]
        async with limited.watcher(session_id, token=agent.token, since=0) as reader:
            await reader.wait_caught_up(timeout=60)
            assert reader.seqs == list(range(1, count + 1))
            assert reader.closed is None
