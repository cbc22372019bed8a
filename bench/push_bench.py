"""``python -m bench push``: latency from ``add_message`` to the watcher's ``notifications/claude/channel``.

One message at a time: the writer's ``add_message`` call starts the clock, the watcher's MCP
client (a ``ChannelListener``, tests/stack.py) stops it when the notification arrives; both
clients run in this process, so one clock serves. ``--via`` chooses where the watcher is:

- ``http``: a client with an MCP session (the initialize handshake) on the writer's sidecar;
- ``stdio``: ``python -m mcp_sidecar --transport stdio``, writer and watcher as two agents of it;
- ``other-sidecar``: the watcher on a second HTTP sidecar (another process), which must learn of
  the message through the cross-process wake stream.

``notification_latency`` is the measurement, for other benchmarks to import. Exits 1 when a
message was not pushed, pushed twice or out of order.
"""

import argparse
import asyncio
import contextlib
import tempfile
import time

from bench import summary_ms, table
from tests.helpers import new_session, say, succeeded
from tests.stack import ChannelListener, Stack


@contextlib.asynccontextmanager
async def over_stdio(stack):
    """A stdio sidecar with a writer and a watcher agent; yields ``(add_message, watch, listener)``."""
    listener = ChannelListener()
    async with stack.stdio_client(client={"mode": "legacy", "extensions": [listener]}) as client:
        async def call(tool, **arguments):
            return succeeded((await client.call_tool(tool, arguments, raise_on_error=False)).structured_content)

        tokens = {name: (await call("authenticate_agent", agent_id=f"bench-push-{name}", agent_type="claude"))["token"]
                  for name in ("writer", "watcher")}

        async def add_message(session_id, content):
            return await call("add_message", session_id=session_id, content=content, auth_token=tokens["writer"])

        async def watch(session_id):
            await call("watch_session", session_id=session_id, auth_token=tokens["watcher"])

        async def create():
            return (await call("create_session", purpose="push latency", auth_token=tokens["writer"]))["session_id"]

        yield create, add_message, watch, listener


@contextlib.asynccontextmanager
async def over_http(stack, watcher_port=None):
    """A writer on the stack's sidecar, a watcher on ``watcher_port``'s (the same by default)."""
    writer = await stack.agent("bench-push-writer", "claude", ("read", "write"))
    watcher = await stack.via(mcp_port=watcher_port).listening_agent("bench-push-watcher", "claude")
    async with writer, watcher:
        async def add_message(session_id, content):
            return await say(writer, session_id, content)

        async def watch(session_id):
            succeeded(await watcher.call("watch_session", session_id=session_id))

        async def create():
            return await new_session(writer, "push latency")

        yield create, add_message, watch, watcher.listener


async def notification_latency(stack, count=100, via="http", within=10.0, calls=None):
    """``(seconds, problems)``: per message, add_message call → notification arrival; what went wrong, if anything.

    ``calls``: a list that gets each add_message call's own duration (seconds), for comparison.
    """
    watcher_port = stack.add_sidecar() if via == "other-sidecar" else None
    clients = over_stdio(stack) if via == "stdio" else over_http(stack, watcher_port)
    seconds, problems = [], []
    async with clients as (create, add_message, watch, listener):
        session_id = await create()
        await watch(session_id)
        sent = []
        for n in range(count):
            started = time.perf_counter()
            answer = await add_message(session_id, f"message {n}")
            if calls is not None:
                calls.append(time.perf_counter() - started)
            sent.append(answer["seq"])
            try:
                await listener.wait_for_seq(answer["seq"], within)
            except TimeoutError:
                problems.append(f"seq {answer['seq']} not pushed within {within} s")
                break
            seconds.append(listener.arrived[-1] - started)
        if listener.seqs != sent[:len(listener.seqs)] or len(set(listener.seqs)) != len(listener.seqs):
            problems.append(f"pushed seqs {listener.seqs[:20]}… for sent {sent[:20]}…")
    return seconds, problems


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench push", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="messages, one at a time (default 200)")
    ways = ["http", "stdio", "other-sidecar"]
    parser.add_argument("--via", nargs="+", choices=ways, default=ways, help="where the watcher is (default: all)")
    args = parser.parse_args(argv)
    vias = args.via
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="bench-push-") as folder:
        stack = Stack(folder).start()
        try:
            for via in vias:
                calls = []
                seconds, problems = asyncio.run(notification_latency(stack, args.count, via, calls=calls))
                figures, call = summary_ms(seconds), summary_ms(calls)
                rows.append([via, figures["n"], call["p50"], figures["p50"], figures["p95"], figures["p99"],
                             figures["max"], "; ".join(problems) or "ok"])
                failed = failed or bool(problems)
        finally:
            stack.stop()
    print("push: add_message call started → notification received; call: the add_message call alone")
    print(table(["watcher", "n", "call p50 ms", "push p50 ms", "p95 ms", "p99 ms", "max ms", "delivery"], rows))
    return 1 if failed else 0
