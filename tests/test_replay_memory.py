"""Replay reads ahead only as far as the socket drains: non-reading clients cannot make Daphne hold a session.

100 WebSockets ask for ``?since=0`` on a session of 400 messages of 100 KB (40 MB, so
4 GB if each socket held its replay) and never read a byte. Before replay was paced, Daphne went from 79 MiB to 1.3 GiB
and a live message to another viewer took 2.3 s.
"""

import asyncio
import base64
import os
import socket
import time
from pathlib import Path

import pytest

from tests.stack import rss

pytestmark = pytest.mark.asyncio(loop_scope="function")

SOCKETS = 100
MESSAGES = 400
SIZE = 100_000
# Each paced socket holds at most one replay chunk (256 KB) above the low-water mark (64 KB) in Daphne,
# ~32 MB for 100 sockets, plus the chunk being encoded and allocator slack. Unpaced, it was 1.2 GB.
RSS_GROWTH_BOUND = 160 * 1024 * 1024

LOAD = (
    "from realtime import operations\n"
    "s = operations.create_session('big', 'loader')\n"
    f"for i in range({MESSAGES}):\n"
    f"    operations.add_message(s.id, sender='loader', sender_type='claude', content=str(i) + 'x' * {SIZE - 8})\n"
    "print(s.id)"
)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def non_reader(stack, session_id, token):
    """A WebSocket handshake for ``?since=0``, then never a byte read (nor much taken by the kernel for it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: no receive-window autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.ws_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws/{session_id}/?since=0 HTTP/1.1\r\nHost: 127.0.0.1:{stack.ws_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {stack.origin}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return writer


async def settled(pid, timeout=120.0):
    """Wait until Daphne is nearly idle (every replay is waiting for its socket), sampling its peak RSS."""
    peak, deadline = 0, time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        for _ in range(5):
            await asyncio.sleep(0.1)
            peak = max(peak, rss(pid))
        now = cpu_seconds(pid)
        if now - last < 0.125:  # under a quarter of a core: only the waiting replays' drain checks are left
            return peak
        last = now
    raise TimeoutError("Daphne never settled")


async def test_non_reading_replays_keep_daphne_small_and_live_messages_prompt(fresh_stack):
    stack = fresh_stack(SCS_MAX_CONNECTIONS_PER_VIEWER=SOCKETS + 10)
    session_id = (await asyncio.to_thread(stack.shell, LOAD)).split()[-1]
    async with await stack.agent("writer", "claude") as writer, await stack.agent("lurker", "claude") as lurker:
        async with stack.watcher(session_id, token=writer.token, since=MESSAGES) as reading:
            await reading.wait_caught_up()
            before = stack.daphne_rss()
            sockets = [await non_reader(stack, session_id, lurker.token) for _ in range(SOCKETS)]
            sent = time.monotonic()
            seq = (await writer.call("add_message", session_id=session_id, content="live"))["seq"]
            await reading.wait_for_seq(seq)
            latency = time.monotonic() - sent
            peak = await settled(stack.daphne.pid)
            print(f"RSS before {before / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB; live message {latency:.2f} s")
            assert peak - before < RSS_GROWTH_BOUND
            assert latency < 1.0
            for connection in sockets:
                connection.close()
