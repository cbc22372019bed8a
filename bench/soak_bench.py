"""Soak: steady writers and many viewers for a while; then how many idle viewers fit in 1 GB.

``python -m bench soak [--seconds 60] [--agents 8] [--rate 40] [--viewers 500] [--sessions 20]
[--idle 2000] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``) on free loopback
ports in a temporary folder and stops them at the end, whatever happens.

1. Soak: ``--agents`` MCP clients add messages at ``--rate`` messages per
   second in all, round-robin over ``--sessions`` sessions, for ``--seconds``;
   ``--viewers`` WebSocket clients (spread evenly over the sessions) watch.
   A viewer the server drops reconnects with ``?since=<last seq>``, as the
   browser does. Figures: lost, duplicated and out-of-order messages over all
   viewers (each must end with exactly seqs 1..N of its session, in order);
   errors; delivery latency (from just before ``add_message`` to the frame's
   arrival); RSS and open file descriptors of each process after a warm-up
   (the first tenth of the run, at least 5 s) and at the end.
2. Idle: a fresh Daphne holds ``--idle`` authenticated, caught-up viewers
   (20 per session) doing nothing; RSS before and after gives the memory per
   idle connection, extrapolated to how many fit in 1 GB.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import tempfile
import time

import websockets

from bench import summary_ms, table
from tests.stack import Stack

VIEWERS_PER_IDLE_SESSION = 20
CONNECT_CONCURRENCY = 50


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the writers write (default 60)")
    parser.add_argument("--agents", type=int, default=8, help="writing agents (default 8)")
    parser.add_argument("--rate", type=float, default=40.0, help="messages per second, all agents (default 40)")
    parser.add_argument("--viewers", type=int, default=500, help="WebSocket viewers (default 500)")
    parser.add_argument("--sessions", type=int, default=20, help="sessions (default 20)")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections to measure; 0 skips (default 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def raise_open_files_limit(wanted):
    """Raise this process's (and its children's) open-files limit towards ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def process_figures(pid):
    """RSS (MiB) and open file descriptors of a process, from /proc."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {"rss_mib": round(rss_kib / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def snapshot(stack):
    return {"daphne": process_figures(stack.daphne.pid), "sidecar": process_figures(stack.sidecar.pid),
            "bench client": process_figures(os.getpid())}


class Viewer:
    """One WebSocket viewer of a session; reconnects from its last seq when dropped."""

    def __init__(self, stack, session_id, token):
        self.stack, self.session_id, self.token = stack, session_id, token
        self.seqs = []  # every new_message seq received, in arrival order
        self.latencies = []
        self.reconnects = 0
        self.errors = []
        self.caught_up = asyncio.Event()
        self.stopping = False
        self.socket = None

    async def run(self, limiter):
        while not self.stopping:
            since = self.seqs[-1] if self.seqs else 0
            try:
                async with limiter:
                    self.socket = await websockets.connect(
                        self.stack.ws_url(self.session_id, since=since), origin=self.stack.origin,
                        additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=30,
                        max_size=2**22)
                async for text in self.socket:
                    now = time.time()
                    frame = json.loads(text)
                    kind = frame.get("type")
                    if kind == "new_message":
                        self.seqs.append(frame["seq"])
                        sent = frame["data"]["metadata"].get("t")
                        if sent is not None:
                            self.latencies.append(now - sent)
                    elif kind == "caught_up":
                        self.caught_up.set()
                    elif kind == "error":
                        self.errors.append(frame.get("code"))
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                if not self.stopping:
                    self.errors.append(type(exc).__name__)
            if not self.stopping:
                self.reconnects += 1
                await asyncio.sleep(0.25)

    async def stop(self):
        self.stopping = True
        if self.socket is not None:
            await self.socket.close()


async def writer(agent, sessions, interval, deadline, counters, offset):
    """Add a message every ``interval`` seconds (steady, not catching up bursts) until ``deadline``."""
    turn = offset
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        session_id = sessions[turn % len(sessions)]
        turn += 1
        try:
            result = await agent.call("add_message", session_id=session_id, content=f"soak {agent.agent_id} {turn}",
                                      metadata={"t": time.time()})
        except Exception as exc:  # counted, the soak goes on
            counters["errors"].append(type(exc).__name__)
        else:
            if result.get("success"):
                counters["written"][session_id] = max(counters["written"].get(session_id, 0), result["seq"])
                counters["calls"].append(result["seq"])
            else:
                counters["errors"].append(result.get("code"))
        next_at = max(next_at + interval, time.monotonic() - interval)
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def delivery_check(viewers, last_seq):
    """Lost, duplicated and out-of-order counts over all viewers."""
    lost = duplicated = out_of_order = 0
    for viewer in viewers:
        expected = last_seq.get(viewer.session_id, 0)
        unique = set(viewer.seqs)
        lost += len(set(range(1, expected + 1)) - unique)
        duplicated += len(viewer.seqs) - len(unique)
        out_of_order += sum(1 for a, b in zip(viewer.seqs, viewer.seqs[1:], strict=False) if b <= a)
    return lost, duplicated, out_of_order


async def soak(stack, args):
    admin = await stack.agent("soak-admin", "admin")
    sessions = [(await admin.call("create_session", purpose=f"soak {n}"))["session_id"] for n in range(args.sessions)]
    reader = await stack.agent("soak-viewer", "claude", permissions=("read",))
    limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)
    viewers = [Viewer(stack, sessions[n % len(sessions)], reader.token) for n in range(args.viewers)]
    viewer_tasks = [asyncio.create_task(viewer.run(limiter)) for viewer in viewers]
    await asyncio.wait_for(asyncio.gather(*(v.caught_up.wait() for v in viewers)), 120)
    agents = [await stack.agent(f"soak-writer-{n}", "claude") for n in range(args.agents)]
    counters = {"written": {}, "calls": [], "errors": []}
    warm_up = max(5.0, args.seconds / 10)
    started = time.monotonic()
    deadline = started + args.seconds
    interval = args.agents / args.rate
    writers = [asyncio.create_task(writer(agent, sessions, interval, deadline, counters, n))
               for n, agent in enumerate(agents)]
    await asyncio.sleep(min(warm_up, args.seconds))
    at_start = snapshot(stack)
    await asyncio.gather(*writers)
    elapsed = time.monotonic() - started
    at_end = snapshot(stack)
    # Let every viewer receive the last messages (bounded wait).
    drain_deadline = time.monotonic() + 30
    while time.monotonic() < drain_deadline:
        lost, _, _ = delivery_check(viewers, counters["written"])
        if not lost:
            break
        await asyncio.sleep(0.2)
    lost, duplicated, out_of_order = delivery_check(viewers, counters["written"])
    for viewer in viewers:
        await viewer.stop()
    await asyncio.gather(*viewer_tasks, return_exceptions=True)
    for agent in (*agents, admin, reader):
        await agent.close()
    latencies = [s for viewer in viewers for s in viewer.latencies]
    viewer_errors = [e for viewer in viewers for e in viewer.errors]
    return {
        "seconds": round(elapsed, 1),
        "agents": args.agents, "viewers": args.viewers, "sessions": args.sessions,
        "messages_written": len(counters["calls"]),
        "write_rate_per_s": round(len(counters["calls"]) / elapsed, 1),
        "frames_delivered": sum(len(viewer.seqs) for viewer in viewers),
        "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "write_errors": len(counters["errors"]), "write_error_kinds": sorted(set(map(str, counters["errors"]))),
        "viewer_errors": len(viewer_errors), "viewer_error_kinds": sorted(set(map(str, viewer_errors))),
        "viewer_reconnects": sum(viewer.reconnects for viewer in viewers),
        "delivery_ms": summary_ms(latencies),
        "after_warm_up": at_start, "at_end": at_end, "warm_up_seconds": warm_up,
    }


async def close_all(sockets):
    """Close every socket at once; whatever has not closed within 10 s is aborted."""
    closing = [asyncio.create_task(socket.close()) for socket in sockets]
    _, pending = await asyncio.wait(closing, timeout=10)
    for task in pending:
        task.cancel()
    for socket in sockets:
        if socket.transport is not None:
            socket.transport.abort()


async def idle(stack, count):
    agent = await stack.agent("idle-admin", "admin")
    sessions_needed = max(1, -(-count // VIEWERS_PER_IDLE_SESSION))
    sessions = [(await agent.call("create_session", purpose=f"idle {n}"))["session_id"]
                for n in range(sessions_needed)]
    limiter = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(n):
        async with limiter:
            socket = await websockets.connect(stack.ws_url(sessions[n % len(sessions)]), origin=stack.origin,
                                              additional_headers={"Authorization": f"Bearer {agent.token}"},
                                              open_timeout=60)
            async for text in socket:
                if json.loads(text).get("type") == "caught_up":
                    break
            return socket

    # Warm up: a few connections, so code paths and caches are loaded before the baseline.
    await close_all([await connect(n) for n in range(20)])
    await asyncio.sleep(2)
    before = process_figures(stack.daphne.pid)
    sockets = await asyncio.gather(*(connect(n) for n in range(count)))
    await asyncio.sleep(3)  # presence announcements settle
    after = process_figures(stack.daphne.pid)
    await close_all(sockets)
    await agent.close()
    per_connection_kib = (after["rss_mib"] - before["rss_mib"]) * 1024 / count
    return {
        "connections": count, "rss_before_mib": before["rss_mib"], "rss_after_mib": after["rss_mib"],
        "fds_after": after["fds"], "per_connection_kib": round(per_connection_kib, 1),
        "per_gib_extrapolated": int((1024 * 1024 - before["rss_mib"] * 1024) / per_connection_kib)
        if per_connection_kib > 0 else None,
    }


def report_soak(soak):
    lines = [
        f"Soak: {soak['agents']} agents, {soak['viewers']} viewers over {soak['sessions']} sessions, "
        f"{soak['seconds']} s",
        table(["figure", "value"], [
            ["messages written", soak["messages_written"]],
            ["write rate (msg/s)", soak["write_rate_per_s"]],
            ["frames delivered", soak["frames_delivered"]],
            ["lost / duplicated / out of order", f"{soak['lost']} / {soak['duplicated']} / {soak['out_of_order']}"],
            ["write errors", f"{soak['write_errors']} {soak['write_error_kinds'] or ''}".strip()],
            ["viewer errors (reconnects)", f"{soak['viewer_errors']} ({soak['viewer_reconnects']}) "
                                           f"{soak['viewer_error_kinds'] or ''}".strip()],
            ["delivery p50 / p95 / p99 / max (ms)",
             " / ".join(str(soak["delivery_ms"][k]) for k in ("p50", "p95", "p99", "max"))],
        ]),
        "",
        f"Processes (after a {soak['warm_up_seconds']:.0f} s warm-up, and at the end):",
        table(["process", "RSS start (MiB)", "RSS end (MiB)", "fds start", "fds end"], [
            [name, soak["after_warm_up"][name]["rss_mib"], soak["at_end"][name]["rss_mib"],
             soak["after_warm_up"][name]["fds"], soak["at_end"][name]["fds"]]
            for name in soak["after_warm_up"]
        ]),
    ]
    return "\n".join(lines)


def report_idle(idle_):
    return (
        f"Idle: {idle_['connections']} caught-up viewers on one Daphne: RSS {idle_['rss_before_mib']} -> "
        f"{idle_['rss_after_mib']} MiB, {idle_['per_connection_kib']} KiB per connection; extrapolated, about "
        f"{idle_['per_gib_extrapolated']} idle connections per GiB (measured at {idle_['connections']}, "
        "not at that size)."
    )


def main(argv=None):
    args = parse(argv or [])
    limit = raise_open_files_limit(max(4096, 2 * (args.viewers + args.idle) + 512))
    results = {"open_files_limit": limit}
    with contextlib.ExitStack() as cleanup:
        folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="scs-soak-"))
        # Every viewer watches with one agent's token: lift the per-viewer connection cap.
        stack = Stack(os.path.join(folder, "soak"), SCS_LOG_LEVEL="WARNING", SCS_MAX_CONNECTIONS_PER_VIEWER=0).start()
        cleanup.callback(stack.stop)
        if not args.json:
            print(f"soak: Daphne pid {stack.daphne.pid}, sidecar pid {stack.sidecar.pid}; {args.agents} agents at "
                  f"{args.rate} msg/s, {args.viewers} viewers, {args.sessions} sessions, {args.seconds} s "
                  f"(open files limit {limit})", flush=True)
        results["soak"] = asyncio.run(soak(stack, args))
        stack.stop()
        if not args.json:
            print(report_soak(results["soak"]), flush=True)
        if args.idle:
            idle_stack = Stack(os.path.join(folder, "idle"), SCS_LOG_LEVEL="WARNING",
                               SCS_MAX_CONNECTIONS_PER_VIEWER=0).start()  # one token watches them all
            cleanup.callback(idle_stack.stop)
            results["idle"] = asyncio.run(idle(idle_stack, args.idle))
            if not args.json:
                print("\n" + report_idle(results["idle"]))
    if args.json:
        print(json.dumps(results, indent=2))
    broken = results["soak"]["lost"] or results["soak"]["duplicated"] or results["soak"]["out_of_order"]
    return 1 if broken else 0
