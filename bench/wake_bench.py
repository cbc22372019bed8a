"""Waking waiting agents: ``add_message`` → the browser's frame, and → each waiting agent's return.

``python -m bench wake [--waiters 1,50,500] [--rounds 40] [--idle 60] [--writer same|other] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``), then, in one run:

1. latency: for each waiter count N, N ``wait_for_messages`` calls wait on one session
   (``RawWaiters``: one MCP session, a socket per call) while a WebSocket viewer watches it; each
   round one ``add_message`` is timed from just before the call to the viewer's frame and to
   each waiting call's return. ``--writer other`` writes through a second sidecar, so the wake
   crosses processes (the wake relay on Daphne) instead of staying in the waiting sidecar.
2. idle: 500 waiters (over 100 sessions) wait for ``--idle`` seconds with nothing stored; the
   sidecar's CPU then (``/proc/<pid>/stat``), as a share of one core, against the same span with
   nobody waiting.

The third latency column is to the ``notifications/claude/channel`` an agent watching the
session (``watch_session``, on the same sidecar) receives: the push, without a tool call.
"""

import argparse
import asyncio
import contextlib
import json
import tempfile
import time

import httpx

from bench import cpu_seconds, summary_ms, table
from tests.helpers import new_session
from tests.stack import Stack, Watcher

TARGETS = {"p50_over_browser_ms": 1.0, "p99_ms_50_waiters": 20.0, "idle_core_share": 0.01}
LONG = 250  # seconds a waiting call may wait (under SCS_WAIT_MAX_TIMEOUT)


async def watching(stack, session_id):
    """An agent watching ``session_id`` (watch_session); its ``listener`` notes each push's arrival."""
    watcher = await stack.listening_agent("bench-wake-watcher", "claude")
    result = await watcher.call("watch_session", session_id=session_id)
    if not result.get("success"):
        await watcher.close()
        raise RuntimeError(f"watch_session refused: {result}")
    return watcher


async def pushed(listener, seq):
    """When the notification of ``seq`` arrived (perf_counter)."""
    await listener.wait_for_seq(seq, 10)
    return listener.arrived[listener.seqs.index(seq)]


class FrameClock(Watcher):
    """A viewer that notes when each message frame arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals = {}

    def received(self, frame):
        super().received(frame)
        if frame.get("type") == "new_message":
            self.arrivals.setdefault(frame["seq"], time.perf_counter())


_health = {}  # port -> one keep-alive httpx.Client (a new client per probe costs an SSL context, ~10 ms of CPU)


def wake_figures(stack):
    """The ``wake`` figures of the waiting sidecar's ``/health``."""
    client = _health.setdefault(stack.mcp_port, httpx.Client(headers=stack.operator_headers(), timeout=30))
    return client.get(f"http://127.0.0.1:{stack.mcp_port}/health").json()["wake"]


async def until_waiting(stack, count, within=120):
    """Until ``count`` waiters are asleep (their first read done), so no call's start competes with a wake."""
    deadline = time.monotonic() + within
    while (await asyncio.to_thread(wake_figures, stack))["parked"] != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sidecar never held {count} waiters")
        await asyncio.sleep(0.01)


def rounds_for(waiters, rounds):
    """Fewer rounds for many waiters: each round of 500 is 500 samples."""
    return max(5, rounds * 50 // max(waiters, 50))


class RawWaiters:
    """Many waiting calls from one process at little client cost: one MCP session (the 2025 protocol),
    one keep-alive socket per call, requests written and answers read by hand.

    A full MCP client spends milliseconds of CPU per answer (HTTP machinery, output-schema validation):
    with 50 answers at once in one process it would measure itself, and delay the viewer's frames too.
    """

    def __init__(self, stack, token):
        self.stack, self.token = stack, token
        self.headers = {"X-API-Key": stack.api_key, "Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json", "mcp-protocol-version": "2025-06-18"}
        self.sockets = []
        self.next_id = 1

    async def open(self, count):
        async with httpx.AsyncClient(timeout=30) as http:
            hello = await http.post(self.stack.mcp_url, headers=self.headers, json={
                "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}})
            self.headers["mcp-session-id"] = hello.headers["mcp-session-id"]
            await http.post(self.stack.mcp_url, headers=self.headers,
                            json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.sockets = [await asyncio.open_connection("127.0.0.1", self.stack.mcp_port) for _ in range(count)]
        return self

    def close(self):
        for _, writer in self.sockets:
            writer.close()

    async def wait(self, k, session_id, since_seq):
        """One wait_for_messages on socket ``k``: when its answer arrived, and the answer."""
        reader, writer = self.sockets[k]
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": {
            "name": "wait_for_messages", "arguments": {
                "session_id": session_id, "since_seq": since_seq, "timeout": LONG, "auth_token": self.token}}})
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        writer.write(f"POST /mcp/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body.encode())
        headers = (await reader.readuntil(b"\r\n\r\n")).lower()
        data, arrived = b"", None
        if b"transfer-encoding: chunked" in headers:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                data += (await reader.readexactly(size + 2))[:-2]
                if arrived is None and b'"result"' in data:
                    arrived = time.perf_counter()
                if size == 0:
                    break
        else:
            length = int(headers.split(b"content-length:")[1].split(b"\r\n")[0])
            data = await reader.readexactly(length)
            arrived = time.perf_counter()
        text = data.decode()
        answer = json.loads(text[text.index("{"):text.rindex("}") + 1])
        return arrived, answer["result"]["structuredContent"]


async def timed_wait(waiters, k, session_id, since_seq):
    returned, result = await waiters.wait(k, session_id, since_seq)
    if not result.get("success") or not result["messages"]:
        raise RuntimeError(f"a waiter returned without the message: {result}")
    return returned


async def latency(stack, writer, waiters, rounds):
    """Latency from add_message to the viewer's frame and to each of ``waiters`` waiting calls' return."""
    async with await stack.agent(f"waiter-{waiters}", "claude", ["read", "write"]) as agent:
        raw = await RawWaiters(stack, agent.token).open(waiters)
    session_id = await new_session(writer, f"bench wake {waiters}")
    browser, woken, channel, seq, cpu = [], [], [], 0, 0.0
    watcher = await watching(stack, session_id)
    try:
        async with FrameClock(stack, session_id, token=writer.token) as viewer:
            await viewer.wait_caught_up()
            for _ in range(rounds):
                calls = [asyncio.ensure_future(timed_wait(raw, k, session_id, seq)) for k in range(waiters)]
                await until_waiting(stack, waiters + 1)  # and the watcher
                notified = asyncio.ensure_future(pushed(watcher.listener, seq + 1))
                cpu_before = cpu_seconds(stack.sidecar.pid)
                started = time.perf_counter()
                answer = await writer.call("add_message", session_id=session_id, content=f"wake {seq + 1}")
                seq = answer["seq"]
                returns = await asyncio.gather(*calls)
                cpu += cpu_seconds(stack.sidecar.pid) - cpu_before
                await viewer.wait(lambda v, s=seq: s in v.arrivals, 10)
                browser.append(viewer.arrivals[seq] - started)
                woken.extend(returned - started for returned in returns)
                channel.append(await notified - started)
    finally:
        raw.close()
        await watcher.close()
    return {"waiters": waiters, "rounds": rounds, "browser": summary_ms(browser), "agent": summary_ms(woken),
            "channel": summary_ms(channel),
            "sidecar_cpu_ms_per_round": round(cpu * 1000 / rounds, 1)}


async def cpu_over(stack, seconds):
    """CPU seconds the sidecar and Daphne use over the next ``seconds``."""
    processes = (("sidecar", stack.sidecar), ("daphne", stack.daphne))
    before = {name: cpu_seconds(process.pid) for name, process in processes}
    await asyncio.sleep(seconds)
    return {name: cpu_seconds(process.pid) - before[name] for name, process in processes}


async def idle(stack, writer, waiters, seconds):
    """Sidecar (and Daphne) CPU while ``waiters`` calls wait over 100 sessions and nothing happens, and
    with nobody waiting (the publisher's sweeper and marks, the wake stream's pings) for comparison."""
    baseline = await cpu_over(stack, seconds)
    async with await stack.agent("idler", "claude", ["read", "write"]) as agent:
        raw = await RawWaiters(stack, agent.token).open(waiters)
    sessions = [await new_session(writer, f"bench idle {n}") for n in range(100)]
    calls = [asyncio.ensure_future(raw.wait(k, sessions[k % len(sessions)], 0)) for k in range(waiters)]
    try:
        await until_waiting(stack, waiters)
        used = await cpu_over(stack, seconds)
        health = await asyncio.to_thread(wake_figures, stack)
    finally:
        for n, session_id in enumerate(sessions):  # wake them all: one message per session
            await writer.call("add_message", session_id=session_id, content=f"end {n}")
        await asyncio.gather(*calls, return_exceptions=True)
        raw.close()
    return {"waiters": waiters, "seconds": seconds, "cpu_seconds": {k: round(v, 3) for k, v in used.items()},
            "core_share": {k: round(v / seconds, 4) for k, v in used.items()},
            "core_share_nobody_waiting": {k: round(v / seconds, 4) for k, v in baseline.items()},
            "polls": health["stream"]["polls"], "poll_wakes": health["stream"]["poll_wakes"]}


async def measure(stack, args):
    writer_stack = stack.via(mcp_port=stack.add_sidecar()) if args.writer == "other" else stack
    async with await writer_stack.agent("bench-writer", "claude", ["read", "write"]) as writer:
        warm = await new_session(writer, "warm-up")
        for n in range(20):  # warm both paths
            await writer.call("add_message", session_id=warm, content=f"warm-up {n}")
        results = {"writer": args.writer,
                   "latency": [await latency(stack, writer, n, rounds_for(n, args.rounds)) for n in args.waiters]}
        if args.idle > 0:
            results["idle"] = await idle(stack, writer, args.idle_waiters, args.idle)
    return results


def verdict(ok):
    return "ok" if ok else "MISSED"


def report(results):
    rows = []
    for entry in results["latency"]:
        b, a, c = entry["browser"], entry["agent"], entry["channel"] or {}
        rows.append((f"{entry['waiters']} waiter(s) x {entry['rounds']} rounds", b["p50"], b["p99"], a["p50"],
                     a["p99"], a["max"], c.get("p50"), c.get("p99"), entry["sidecar_cpu_ms_per_round"]))
    parts = [f"writer on the {'waiting' if results['writer'] == 'same' else 'other'} sidecar",
             table(["add_message ->", "browser p50", "p99", "agent p50", "p99", "max", "channel p50", "p99",
                    "sidecar CPU ms"], rows)]
    targets = []
    single = results["latency"][0]
    targets.append(("agent p50 within 1 ms of the browser's",
                    f"{single['agent']['p50']} vs {single['browser']['p50']} ms ({single['waiters']} waiter)",
                    verdict(single["agent"]["p50"] - single["browser"]["p50"] <= TARGETS["p50_over_browser_ms"])))
    for entry in results["latency"]:
        if entry["waiters"] == 50:
            targets.append(("agent p99 < 20 ms with 50 waiters", f"{entry['agent']['p99']} ms",
                            verdict(entry["agent"]["p99"] < TARGETS["p99_ms_50_waiters"])))
    if "idle" in results:
        idle_figures = results["idle"]
        share, alone = idle_figures["core_share"]["sidecar"], idle_figures["core_share_nobody_waiting"]["sidecar"]
        targets.append((f"{idle_figures['waiters']} idle waiters < 1% of a core",
                        f"sidecar {share * 100:.2f}% over {idle_figures['seconds']:g} s, {alone * 100:.2f}% with "
                        f"nobody waiting (Daphne {idle_figures['core_share']['daphne'] * 100:.2f}%)",
                        verdict(share - alone < TARGETS["idle_core_share"])))
    parts.append(table(["target", "measured", ""], targets))
    return "\n\n".join(parts)


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench wake", description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", default="1,50,500", type=lambda text: [int(n) for n in text.split(",")],
                        help="waiter counts, comma-separated (default 1,50,500)")
    parser.add_argument("--rounds", type=int, default=40,
                        help="messages for 1 and 50 waiters (default 40; fewer for more waiters, at least 5)")
    parser.add_argument("--idle", type=float, default=60, help="seconds of the idle CPU measure (default 60; 0: skip)")
    parser.add_argument("--idle-waiters", type=int, default=500, help="waiters in the idle measure (default 500)")
    parser.add_argument("--writer", choices=["same", "other"], default="same",
                        help="write through the waiting sidecar (default) or through a second one")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the processes, e.g. CHANNEL_LAYER_URL=redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv or [])
    if args.idle > LONG - 30:
        raise SystemExit(f"--idle must be at most {LONG - 30} s (a waiting call waits at most {LONG} s)")
    env = dict(item.split("=", 1) for item in args.env)
    with contextlib.ExitStack() as cleanup:
        data_dir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="scs-bench-"))
        # The bench measures waking, not the per-agent allowances.
        stack = Stack(data_dir, SCS_TOOL_RATE=100_000, SCS_TOOL_BURST=100_000, SCS_MAX_SESSIONS_PER_HOUR=100_000,
                      **env).start()
        cleanup.callback(stack.stop)
        if not args.json:
            print(f"Daphne pid {stack.daphne.pid}, sidecar pid {stack.sidecar.pid}; waiters {args.waiters}, "
                  f"{args.rounds} rounds each, idle {args.idle} s", flush=True)
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover
            runner = asyncio.run
        results = runner(measure(stack, args))
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0
