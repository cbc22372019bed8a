"""Waking waiting agents: ``add_message`` → the browser's frame, and → each waiting agent's return.

``python -m bench wake [--waiters 1,50,500] [--rounds 40] [--idle 60] [--writer same|other] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``), then, in one run:

1. latency: for each waiter count N, N ``wait_for_messages`` calls wait on one session
   (spread over MCP clients of at most 50 calls each) while a WebSocket viewer watches it; each
   round one ``add_message`` is timed from just before the call to the viewer's frame and to
   each waiting call's return. ``--writer other`` writes through a second sidecar, so the wake
   crosses processes (the wake relay on Daphne) instead of staying in the waiting sidecar.
2. idle: 500 waiters (over 100 sessions) wait for ``--idle`` seconds with nothing stored; the
   sidecar's CPU then (``/proc/<pid>/stat``), as a share of one core.

The third latency column, to a channel notification of a watched session, is left for
``watch_session`` (``CHANNEL`` below); it prints "-" until that measure exists.
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
PER_CLIENT = 50  # concurrent calls one MCP client makes (its HTTP pool holds 100)
LONG = 250  # seconds a waiting call may wait (under SCS_WAIT_MAX_TIMEOUT)
# How to measure the latency to a channel notification of a watched session: an async function
# (stack, session_id, writer) -> an awaitable callback started before each add_message that returns the
# perf_counter() time the notification arrived; None until watch_session exists.
CHANNEL = None


class FrameClock(Watcher):
    """A viewer that notes when each message frame arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals = {}

    def received(self, frame):
        super().received(frame)
        if frame.get("type") == "new_message":
            self.arrivals.setdefault(frame["seq"], time.perf_counter())


def wake_figures(stack):
    """The ``wake`` figures of the waiting sidecar's ``/health``."""
    answer = httpx.get(f"http://127.0.0.1:{stack.mcp_port}/health", headers=stack.operator_headers(), timeout=30)
    return answer.json()["wake"]


async def until_waiting(stack, count, within=120):
    deadline = time.monotonic() + within
    while (await asyncio.to_thread(wake_figures, stack))["session_waiters"] != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sidecar never held {count} waiters")
        await asyncio.sleep(0.02)


def rounds_for(waiters, rounds):
    """Fewer rounds for many waiters: each round of 500 is 500 samples."""
    return max(5, rounds * 50 // max(waiters, 50))


async def clients_for(stack, count, name):
    """Agents (MCP clients) enough for ``count`` concurrent calls."""
    return [await stack.agent(f"{name}-{k}", "claude", ["read", "write"]) for k in range(-(-count // PER_CLIENT))]


async def timed_wait(agent, session_id, since_seq):
    result = await agent.call("wait_for_messages", session_id=session_id, since_seq=since_seq, timeout=LONG)
    returned = time.perf_counter()
    if not result.get("success") or not result["messages"]:
        raise RuntimeError(f"a waiter returned without the message: {result}")
    return returned


async def latency(stack, writer, waiters, rounds):
    """Latency from add_message to the viewer's frame and to each of ``waiters`` waiting calls' return."""
    agents = await clients_for(stack, waiters, f"waiter{waiters}")
    session_id = await new_session(writer, f"bench wake {waiters}")
    browser, woken, channel, seq = [], [], [], 0
    try:
        async with FrameClock(stack, session_id, token=writer.token) as viewer:
            await viewer.wait_caught_up()
            for _ in range(rounds):
                calls = [asyncio.ensure_future(timed_wait(agents[k // PER_CLIENT], session_id, seq))
                         for k in range(waiters)]
                await until_waiting(stack, waiters)
                notified = await CHANNEL(stack, session_id, writer) if CHANNEL else None
                started = time.perf_counter()
                answer = await writer.call("add_message", session_id=session_id, content=f"wake {seq + 1}")
                seq = answer["seq"]
                returns = await asyncio.gather(*calls)
                await viewer.wait(lambda v, s=seq: s in v.arrivals, 10)
                browser.append(viewer.arrivals[seq] - started)
                woken.extend(returned - started for returned in returns)
                if notified is not None:
                    channel.append(await notified - started)
    finally:
        for agent in agents:
            await agent.close()
    return {"waiters": waiters, "rounds": rounds, "browser": summary_ms(browser), "agent": summary_ms(woken),
            "channel": summary_ms(channel) if channel else None}


async def idle(stack, writer, waiters, seconds):
    """Sidecar (and Daphne) CPU while ``waiters`` calls wait over 100 sessions and nothing happens."""
    agents = await clients_for(stack, waiters, "idler")
    sessions = [await new_session(writer, f"bench idle {n}") for n in range(100)]
    calls = [asyncio.ensure_future(agents[k // PER_CLIENT].call(
        "wait_for_messages", session_id=sessions[k % len(sessions)], timeout=LONG)) for k in range(waiters)]
    try:
        await until_waiting(stack, waiters)
        before = {name: cpu_seconds(process.pid) for name, process in (("sidecar", stack.sidecar),
                                                                        ("daphne", stack.daphne))}
        await asyncio.sleep(seconds)
        used = {name: cpu_seconds(process.pid) - before[name] for name, process in (("sidecar", stack.sidecar),
                                                                                      ("daphne", stack.daphne))}
        health = await asyncio.to_thread(wake_figures, stack)
    finally:
        for n, session_id in enumerate(sessions):  # wake them all: one message per session
            await writer.call("add_message", session_id=session_id, content=f"end {n}")
        await asyncio.gather(*calls, return_exceptions=True)
        for agent in agents:
            await agent.close()
    return {"waiters": waiters, "seconds": seconds, "cpu_seconds": {k: round(v, 3) for k, v in used.items()},
            "core_share": {k: round(v / seconds, 4) for k, v in used.items()}, "polls": health["stream"]["polls"],
            "poll_wakes": health["stream"]["poll_wakes"]}


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
                     a["p99"], a["max"], c.get("p50"), c.get("p99")))
    parts = [f"writer on the {'waiting' if results['writer'] == 'same' else 'other'} sidecar",
             table(["add_message ->", "browser p50", "p99", "agent p50", "p99", "max", "channel p50", "p99"], rows)]
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
        share = idle_figures["core_share"]["sidecar"]
        targets.append((f"{idle_figures['waiters']} idle waiters < 1% of a core",
                        f"{share * 100:.2f}% over {idle_figures['seconds']} s (Daphne "
                        f"{idle_figures['core_share']['daphne'] * 100:.2f}%; {idle_figures['polls']} safety polls)",
                        verdict(share < TARGETS["idle_core_share"])))
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
