"""Fan-out to many WebSocket viewers on one Daphne process: connect, one message to all, idle cost.

``python -m bench fanout [--viewers 1000] [--sessions 1] [--per-agent 5] [--clients 4] [--rounds 10] [--pause 0.3]
[--deflate] [--connect-timeout 300] [--profile PREFIX]``

Viewers are agents (``--per-agent`` sockets each, so the per-viewer connection cap
and presence see several connections per viewer), spread over ``--sessions``
sessions and over ``--clients`` client processes (each raising RLIMIT_NOFILE).
Each round posts one message to every session at once, and the next round starts
once every viewer has it (then ``--pause``); a round's time is from just before
the posts to the last viewer's receipt. Reported: connect time (all viewers
caught up), how long a round's ``add_message`` calls took (p50), last receipt
p50 / max over rounds, server and client CPU seconds per 1,000 delivered frames,
Daphne's idle CPU and memory per connection (RSS with everyone connected and
quiet, less RSS before), and lost / duplicated / out-of-order frames by seq at
every viewer. ``--deflate`` has clients offer permessage-deflate and the server
accept it (``SCS_WS_DEFLATE=1``); the report says on how many connections it was.
``--profile PREFIX`` records Daphne with py-spy while viewers join (``PREFIX-join.svg``)
and during the rounds (``PREFIX-rounds.svg``).

Exits non-zero when a frame was lost, duplicated or out of order, or a viewer failed to connect.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from bench import cpu_seconds, percentile, table
from tests.helpers import new_session
from tests.stack import Stack, rss

IN_FLIGHT = 64  # handshakes one client process has open at once
QUIET = 1.0  # seconds without a frame at any viewer before idle is measured
IDLE = 5.0  # seconds of idle CPU measured with everyone connected
ROUND_WAIT = 60.0  # seconds a round may take before its missing frames count as lost


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# One client process


class Viewer:
    """One socket: the seqs of the ``new_message`` frames it got, and when it got each."""

    def __init__(self, url, token):
        self.url, self.token = url, token
        self.seqs, self.arrived, self.last_frame = [], {}, time.monotonic()
        self.socket = None
        self.caught_up = asyncio.Event()

    async def connect(self, origin, deflate):
        self.socket = await websockets.connect(
            self.url, origin=origin, additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=None, max_size=None, ping_interval=None, compression="deflate" if deflate else None)
        asyncio.get_running_loop().create_task(self.read())

    async def read(self):
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.socket:
                now = time.monotonic()
                self.last_frame = now
                if text.startswith('{"type":"new_message"'):
                    seq = json.loads(text)["seq"]
                    self.seqs.append(seq)
                    self.arrived.setdefault(seq, now)
                elif '"caught_up"' in text[:40]:
                    self.caught_up.set()


async def client_main(work, origin, deflate, connect_timeout, pipe):
    viewers = [Viewer(url, token) for url, token in work]
    gate = asyncio.Semaphore(IN_FLIGHT)
    failed = []

    async def join(viewer):
        async with gate:
            try:
                await viewer.connect(origin, deflate)
                await asyncio.wait_for(viewer.caught_up.wait(), connect_timeout)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the others go on
                failed.append(f"{type(exc).__name__} {exc}"[:200])

    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(join(v) for v in viewers)), connect_timeout)
    pipe.send({"connected": sum(v.caught_up.is_set() for v in viewers), "failed": failed[:3],
               "deflated": sum(1 for v in viewers if v.socket is not None and v.socket.protocol.extensions),
               "connect_s": time.monotonic() - started})
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "quiet":
            pipe.send(max(v.last_frame for v in viewers))
        elif command == "count":
            pipe.send(sum(len(v.seqs) for v in viewers))
        elif command == "cpu":
            pipe.send(cpu_seconds())
        elif command == "report":
            pipe.send([(v.url, v.seqs, v.arrived) for v in viewers])
        elif command == "stop":
            await asyncio.gather(*(v.socket.close() for v in viewers if v.socket), return_exceptions=True)
            pipe.send("stopped")
            return


def client_process(work, origin, deflate, connect_timeout, pipe):
    raise_nofile()
    asyncio.run(client_main(work, origin, deflate, connect_timeout, pipe))


# The run


def profiler(args, part, pid):
    """py-spy recording ``pid`` into ``<prefix>-<part>.svg`` (or ``.txt``, collapsed stacks) until
    ``stop_profiler``; None without ``--profile``."""
    if not args.profile:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    raw = args.profile_format == "raw"
    return subprocess.Popen([str(spy), "record", "--nonblocking", "-r", "50", "-p", str(pid), "-f", args.profile_format,
                             "-o", f"{args.profile}-{part}.{'txt' if raw else 'svg'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(spy):
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def mint_tokens(stack, agents):
    """``agents`` read-only agent tokens, signed by the stack's own secret in one ``manage.py shell``."""
    code = ("from realtime import tokens\n"
            f"for n in range({agents}): print(tokens.issue(f'viewer-{{n}}', 'claude', ['read'])[0])")
    return stack.shell(code).split()


async def make_sessions(stack, count):
    async with await stack.agent("fan-writer") as agent:
        return [await new_session(agent, f"fan-out {n}") for n in range(count)]


async def post_round(stack, agent, sessions, n):
    results = await asyncio.gather(*(agent.call("add_message", session_id=sid, content=f"round {n} of {sid}")
                                     for sid in sessions))
    assert all(r.get("success") for r in results), results


def ask(pipes, command):
    for pipe in pipes:
        pipe.send(command)
    return [pipe.recv() for pipe in pipes]


def check(reports, expected):
    """(frames, lost, duplicated, out_of_order) over every viewer; ``expected``: url -> seqs it must get."""
    frames = lost = duplicated = disorder = 0
    for url, seqs, _ in reports:
        frames += len(seqs)
        want = expected[url]
        duplicated += len(seqs) - len(set(seqs))
        lost += len(want - set(seqs))
        disorder += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
    return frames, lost, duplicated, disorder


def run(args, folder):
    raise_nofile()  # before Daphne starts: it inherits the limit
    stack = Stack(folder, SCS_LOG_LEVEL="ERROR", SCS_WS_DEFLATE="1" if args.deflate else "0").start()
    processes = []
    try:
        sessions = asyncio.run(make_sessions(stack, args.sessions))
        agents = -(-args.viewers // args.per_agent)
        tokens = mint_tokens(stack, agents)
        work = [(stack.ws_url(sessions[n % len(sessions)]), tokens[n // args.per_agent]) for n in range(args.viewers)]
        daphne = stack.daphne.pid
        rss_before = rss(daphne)
        spy = profiler(args, "join", daphne)
        ctx = multiprocessing.get_context("spawn")
        pipes = []
        for c in range(args.clients):
            here, there = ctx.Pipe()
            process = ctx.Process(target=client_process,
                                  args=(work[c::args.clients], stack.origin, args.deflate, args.connect_timeout, there))
            process.start()
            processes.append(process)
            pipes.append(here)
        joined = [pipe.recv() for pipe in pipes]
        stop_profiler(spy)
        connected = sum(j["connected"] for j in joined)
        connect_s = max(j["connect_s"] for j in joined)
        failures = [f for j in joined for f in j["failed"]]
        deflated = sum(j["deflated"] for j in joined)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and time.monotonic() - max(ask(pipes, "quiet")) < QUIET:
            time.sleep(0.25)
        rss_idle = rss(daphne)
        idle_from = cpu_seconds(daphne)
        time.sleep(IDLE)
        idle_cpu = (cpu_seconds(daphne) - idle_from) / IDLE

        posted = []  # seconds each round's add_message calls took

        async def rounds():
            times = []
            async with await stack.agent("fan-writer") as agent:
                for n in range(args.rounds):
                    started = time.monotonic()
                    await post_round(stack, agent, sessions, n)
                    posted.append(time.monotonic() - started)
                    times.append(started)
                    until = time.monotonic() + ROUND_WAIT  # the next round once this one reached everyone
                    while sum(ask(pipes, "count")) < connected * (n + 1) and time.monotonic() < until:
                        await asyncio.sleep(0.02)
                    await asyncio.sleep(args.pause)
            return times

        spy = profiler(args, "rounds", daphne)
        server_from, clients_from = cpu_seconds(daphne), sum(ask(pipes, "cpu"))
        starts = asyncio.run(rounds())
        wait_until = time.monotonic() + ROUND_WAIT
        while sum(ask(pipes, "count")) < connected * args.rounds and time.monotonic() < wait_until:
            time.sleep(0.1)
        server_cpu = cpu_seconds(daphne) - server_from
        client_cpu = sum(ask(pipes, "cpu")) - clients_from
        stop_profiler(spy)
        reports = [r for part in ask(pipes, "report") for r in part]
        ask(pipes, "stop")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        stack.stop()
    # Every session's messages have seqs 1..rounds (sessions are new and only the rounds write to them).
    expected = {url: set(range(1, args.rounds + 1)) for url, _ in work}
    frames, lost, duplicated, disorder = check(reports, expected)
    lasts = []
    for n, started in enumerate(starts):
        arrivals = [arrived[n + 1] for _, _, arrived in reports if n + 1 in arrived]
        if arrivals:
            lasts.append(max(arrivals) - started)
    per_k = 1000 / frames if frames else None
    row = [f"{args.viewers} viewers / {args.sessions} session(s)", f"{connected}/{args.viewers}",
           round(connect_s, 1), ms(percentile(posted, 0.5)), ms(percentile(lasts, 0.5)),
           ms(max(lasts) if lasts else None),
           round(server_cpu * per_k, 3) if per_k else None, round(client_cpu * per_k, 3) if per_k else None,
           round(idle_cpu, 2), round((rss_idle - rss_before) / 1024 / max(connected, 1), 1),
           lost, duplicated, disorder]
    print(f"fan-out, one Daphne (in-memory layer), {args.clients} client processes, {args.per_agent} sockets per "
          f"agent, {args.rounds} rounds, permessage-deflate "
          f"{'offered by clients and accepted by the server' if args.deflate else 'off (clients do not offer it)'} "
          f"(SCS_WS_DEFLATE={int(args.deflate)}), accepted on {deflated} connections")
    print(table(["load", "connected", "connect s", "posts p50 ms", "last p50 ms", "last max ms",
                 "server CPU s/1k frames", "client CPU s/1k frames", "idle CPU", "idle KiB/conn", "lost", "dup",
                 "disorder"], [row]))
    if failures:
        print("connect failures (first few):", *failures, sep="\n  ")
    return 1 if lost or duplicated or disorder or connected < args.viewers else 0


def ms(seconds):
    return None if seconds is None else round(seconds * 1000)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--per-agent", type=int, default=5, help="sockets per agent (within the per-viewer cap)")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between rounds")
    parser.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate, the server accepts")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--profile", metavar="PREFIX", help="py-spy flame graphs: PREFIX-join.svg, -rounds.svg")
    parser.add_argument("--profile-format", choices=("flamegraph", "raw"), default="flamegraph",
                        help="raw: collapsed stacks, one line each")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scs-fanout-") as folder:
        return run(args, folder)


if __name__ == "__main__":
    sys.exit(main())
