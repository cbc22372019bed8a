"""Fan-out to many WebSocket viewers on one or several Daphne processes: connect, one message to all, idle cost.

``python -m bench fanout [--viewers 1000] [--sessions 1] [--per-agent 5] [--clients 4] [--rounds 10] [--pause 0.3]
[--daphnes 1] [--layer memory|redis] [--redis URL] [--deflate] [--connect-timeout 300] [--profile PREFIX]
[--client fastmcp|lean] [--no-peer] [--peer-venv DIR]``

By default one Daphne process on the in-memory channel layer. ``--daphnes N`` runs N
Daphne processes sharing the Redis channel layer (``--layer redis``, the default past
one process; ``--layer redis`` with one Daphne is the baseline to compare with), on
``--redis`` (else ``SCS_BENCH_REDIS_URL``, ``SCS_TEST_REDIS_URL``, redis://127.0.0.1:6379/0)
under a channel-layer prefix of the run's own, so runs sharing a Redis do not hear each
other. The database stays SQLite (one file, shared by every process); on Redis the sidecar
publishes on the layer, so every frame crosses Redis whichever Daphne holds its viewer.
Viewers are spread evenly over the Daphne processes (viewer n on process n mod N).

Viewers are agents (``--per-agent`` sockets each, so the per-viewer connection cap
and presence see several connections per viewer), spread over ``--sessions``
sessions and over ``--clients`` client processes (each raising RLIMIT_NOFILE).
Each round posts one message to every session at once, and the next round starts
once every viewer has it (then ``--pause``); a round's time is from just before
the posts to the last viewer's receipt. Reported: connect time (all viewers
caught up), how long a round's ``add_message`` calls took (p50), last receipt
p50 / max over rounds, the fan-out alone (p50 over messages of the time from a
message's stored timestamp to its last viewer's receipt: without the sidecar's
storing, which with 100 sessions is most of a round), server and client CPU
seconds per 1,000 delivered frames,
Daphne's idle CPU and memory per connection (RSS with everyone connected and
quiet, less RSS before), and lost / duplicated / out-of-order frames by seq at
every viewer. ``--deflate`` has clients offer permessage-deflate and the server
accept it (``SCS_WS_DEFLATE=1``); the report says on how many connections it was. Server figures in that table
are the sum over the Daphne processes; a second table has them per process (its
viewers, the frames it delivered, its CPU seconds over the rounds, per 1,000 of its
own frames and per 1,000 frames of the whole run, idle CPU and KiB per connection),
their total, and Redis's CPU when it runs on this machine (shared with whatever else
uses it). Two processes halving the work shows as each one's CPU per 1,000 frames of
the run being half of one process's.
The rounds' messages are posted by one agent, with fastmcp's MCP client (``--client fastmcp``, the default), or
with ``bench.mcp_http.LeanAgent`` (``--client lean``): the same requests for a fraction of the CPU, which a client
on the server's cores takes from the server (with 100 sessions, 100 calls a round).
``--profile PREFIX`` records Daphne with py-spy while viewers join (``PREFIX-join.svg``)
and during the rounds (``PREFIX-rounds.svg``); with several processes, one file each
(``PREFIX-daphne2-join.svg``, ...).

Then the same load (viewers, sessions, client processes, rounds, pause) runs against the
peer, shared-context-server 1.1.10 (``bench.peer_bench``: installed into ``--peer-venv``
when missing, ``.cache/peer-venv`` by default), and its row follows ours in the main table
("-" where it has no figure); ``--no-peer`` leaves it out. The peer is one process with
its own in-memory fan-out, so it runs only against our one Daphne on the in-memory layer
without ``--deflate`` (otherwise a line says it was left out and why). The client processes are
the same for both, told apart by how a frame is read (``OurFrames``, ``PeerFrames``): the
peer's ``new_message`` frames carry no seq, so a message's seq is read from the content
the rounds post (``round {n} of {session}``), and its viewers send no token and count as
connected once their handshake is done (it sends no caught-up frame; the quiet second and
the idle seconds pass before the first round). Its server CPU and memory are those of its
one process; its ``data.timestamp`` is taken just after the message is stored, so its
stored-last is measured from there. CPU per 1,000 frames counts each message once per
viewer: the peer sends every frame twice, and the duplicate shows in ``dup`` only. A
round ends when every connected viewer has its message, after 60 s, or after 10 s in
which no viewer got anything.

Exits non-zero when a frame of ours was lost, duplicated or out of order, or one of our
viewers failed to connect; the peer's figures (or its failing to start) are reported only.
"""

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import multiprocessing
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench import cpu_seconds, percentile, redis_pid, table
from bench.mcp_http import CLIENTS, LeanAgent
from bench.peer_bench import PEER_VENV, PEER_VERSION, Peer, ensure_peer
from bench.peer_bench import Agent as PeerAgent
from tests.helpers import new_session
from tests.stack import Stack, rss

IN_FLIGHT = 64  # handshakes one client process has open at once
QUIET = 1.0  # seconds without a frame at any viewer before idle is measured
IDLE = 5.0  # seconds of idle CPU measured with everyone connected
ROUND_WAIT = 60.0  # seconds a round may take before its missing frames count as lost
STALL = 10.0  # ... or seconds without a new delivery at any viewer


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# What a viewer takes from each server's frames: None (not a message), READY, or (seq, stored epoch seconds or None)

READY = "ready"


@functools.lru_cache(maxsize=1024)  # every viewer of a session reads the same timestamps
def stored_at(iso):
    """Epoch seconds of an ISO 8601 timestamp (``Z`` or an offset; a naive one is taken as UTC)."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class OurFrames:
    """Ours: ``{"type":"new_message","seq":…,"data":{…,"timestamp":…}}``, seq per session from 1, the timestamp the
    message's storing; a viewer is connected at its ``caught_up`` frame."""

    ready_on_open = False

    @staticmethod
    def parse(text):
        if text.startswith('{"type":"new_message"'):
            event = json.loads(text)
            return event["seq"], stored_at(event["data"]["timestamp"])
        if text.startswith('{"type":"caught_up"'):
            return READY
        return None


class PeerFrames:
    """The peer's: ``{"type":"new_message","data":{"id","sender","sender_type","content","visibility",
    "timestamp","metadata"}}`` (each sent twice, and a ``session_update`` frame before), no seq (``id`` is the
    database's, over every session) and no hello or caught-up frame: a viewer is connected once its handshake is
    done. The seq is read from the content the rounds post, ``round {n} of {session}`` (seq n + 1, as ours); the
    timestamp is taken just after the message was stored."""

    ready_on_open = True
    ROUND = re.compile(r"round (\d+) of ")

    @classmethod
    def parse(cls, text):
        if '"new_message"' not in text[:40]:
            return None
        data = json.loads(text)["data"]
        found = cls.ROUND.match(data.get("content") or "")
        if found is None:
            return None
        stamp = data.get("timestamp")
        return int(found.group(1)) + 1, stored_at(stamp) if isinstance(stamp, str) else None


# One client process


class Viewer:
    """One socket: the seqs of the message frames it got (``frames`` reads them), and when it got each.

    ``headers`` and ``origin``: what its server wants at the handshake (ours: a token and its Daphne's own origin).
    """

    def __init__(self, url, headers, origin, frames):
        self.url, self.headers, self.origin, self.frames = url, headers, origin, frames
        self.seqs, self.arrived, self.last_frame = [], {}, time.monotonic()
        self.after_stored = {}  # seq -> seconds from the message's timestamp (its storing) to its arrival here
        self.socket = None
        self.caught_up = asyncio.Event()

    async def connect(self, client, deflate):
        """Open the socket with ``client`` (an ``aiohttp.ClientSession``) and start reading it."""
        self.socket = await client.ws_connect(self.url, headers=self.headers, origin=self.origin, max_msg_size=0,
                                              compress=15 if deflate else 0)
        if self.frames.ready_on_open:
            self.last_frame = time.monotonic()
            self.caught_up.set()
        asyncio.get_running_loop().create_task(self.read())

    async def read(self):
        parse = self.frames.parse
        async for message in self.socket:  # ends when the socket closes; pings are answered for it
            if message.type is aiohttp.WSMsgType.TEXT:
                now = time.monotonic()
                self.last_frame = now
                got = parse(message.data)
                if got is None:
                    continue
                if got == READY:
                    self.caught_up.set()
                    continue
                seq, stored = got
                self.seqs.append(seq)
                self.arrived.setdefault(seq, now)
                if stored is not None:
                    self.after_stored.setdefault(seq, time.time() - stored)


def web_client():
    """The client processes' HTTP client: no cap on connections, no time limit but the run's own.

    aiohttp rather than websockets for the viewers: its frame reader is compiled, and a text frame costs the
    client about 20-26 µs of CPU against websockets' 47-49 µs (200 sockets, 40,000 frames, either loop).
    """
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None))


async def client_main(work, frames, deflate, connect_timeout, pipe):
    viewers = [Viewer(url, headers, origin, frames) for url, headers, origin in work]
    gate = asyncio.Semaphore(IN_FLIGHT)
    failed = []
    client = web_client()

    async def join(viewer):
        async with gate:
            try:
                await viewer.connect(client, deflate)
                await asyncio.wait_for(viewer.caught_up.wait(), connect_timeout)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the others go on
                failed.append(f"{type(exc).__name__} {exc}"[:200])

    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(join(v) for v in viewers)), connect_timeout)
    pipe.send({"connected": collections.Counter(v.url for v in viewers if v.caught_up.is_set()), "failed": failed[:3],
               "deflated": sum(1 for v in viewers if v.socket is not None and v.socket.compress),
               "connect_s": time.monotonic() - started})
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "quiet":
            pipe.send(max(v.last_frame for v in viewers))
        elif command == "count":  # messages delivered, each once per viewer however often it came
            pipe.send(sum(len(v.arrived) for v in viewers))
        elif command == "cpu":
            pipe.send(cpu_seconds())
        elif command == "report":
            pipe.send([(v.url, v.seqs, v.arrived, v.after_stored) for v in viewers])
        elif command == "stop":
            await asyncio.gather(*(v.socket.close() for v in viewers if v.socket), return_exceptions=True)
            await client.close()
            pipe.send("stopped")
            return


def client_process(work, frames, deflate, connect_timeout, pipe):
    raise_nofile()
    try:
        import uvloop  # the load generator's own loop: cheaper per frame than asyncio's

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
        runner = asyncio.run
    runner(client_main(work, frames, deflate, connect_timeout, pipe))


# The run


class Server:
    """One server process of the run (a Daphne of ours, or the peer's one process): the stack seen through it
    (``view``, a Daphne's own ``ws_url``; None for the peer), its pid, and its figures."""

    def __init__(self, view, pid):
        self.view, self.pid = view, pid
        self.connected = self.frames = 0
        self.rss_before = self.rss_idle = 0
        self.idle_cpu = self.rounds_cpu = None

    @property
    def idle_kib(self):
        """Idle memory the connections cost, KiB in all."""
        return (self.rss_idle - self.rss_before) / 1024


def layer_env(args):
    """What every process of the stack gets for ``args.layer`` (nothing: the in-memory layer)."""
    if args.layer == "memory":
        return {}
    # A prefix of the run's own: pub/sub channels ignore the database number, and other runs may share this Redis.
    # The sidecar publishes on the layer, so a frame reaches every Daphne through Redis.
    return {"CHANNEL_LAYER_URL": args.redis, "CHANNEL_LAYER_PREFIX": f"scs-fanout-{secrets.token_hex(4)}",
            "SCS_PUBLISH_VIA": "channel_layer"}


def start(args, folder):
    """The stack and its ``args.daphnes`` Daphne processes (the stack's own first); all stopped if one cannot start."""
    stack = Stack(folder, SCS_LOG_LEVEL="ERROR", SCS_WS_DEFLATE="1" if args.deflate else "0",
                  **layer_env(args)).start()
    try:
        ports = [stack.add_daphne() for _ in range(args.daphnes - 1)]
    except BaseException:
        stack.stop()
        raise
    more = [Server(stack.via(ws_port=port), process.pid) for port, process in zip(ports, stack.more, strict=True)]
    return stack, [Server(stack, stack.daphne.pid), *more]


def profilers(args, part, daphnes):
    """py-spy recording each Daphne into ``<prefix>-<part>.svg`` (``<prefix>-daphne<n>-<part>.svg`` for the
    second and later; ``.txt``: collapsed stacks) until ``stop_profilers``; none without ``--profile``."""
    if not args.profile:
        return []
    spy = Path(sys.executable).with_name("py-spy")
    extension = "txt" if args.profile_format == "raw" else "svg"
    return [subprocess.Popen([str(spy), "record", "--nonblocking", "-r", "50", "-p", str(daphne.pid),
                              "-f", args.profile_format,
                              "-o", f"{args.profile}{f'-daphne{n}' if n > 1 else ''}-{part}.{extension}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n, daphne in enumerate(daphnes, 1)]


def stop_profilers(spies):
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=60)


def mint_tokens(stack, agents):
    """``agents`` read-only agent tokens, signed by the stack's own secret in one ``manage.py shell``."""
    code = ("from realtime import tokens\n"
            f"for n in range({agents}): print(tokens.issue(f'viewer-{{n}}', 'claude', ['read'])[0])")
    return stack.shell(code).split()


async def make_sessions(writer, count):
    """``count`` new sessions, created by the agent ``await writer()`` opens."""
    async with await writer() as agent:
        return [await new_session(agent, f"fan-out {n}") for n in range(count)]


async def post_round(agent, sessions, n):
    results = await asyncio.gather(*(agent.call("add_message", session_id=sid, content=f"round {n} of {sid}")
                                     for sid in sessions))
    failed = [result for result in results if not (result and result.get("success"))]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} add_message calls of round {n} failed, "
                           f"the first answered {failed[0]!r}")


def ask(pipes, command):
    for pipe in pipes:
        pipe.send(command)
    return [pipe.recv() for pipe in pipes]


async def delivered(pipes, want, within):
    """Wait until the viewers hold ``want`` messages (``count``), ``within`` seconds passed, or none came for STALL."""
    until = time.monotonic() + within
    last, moved = -1, time.monotonic()
    while (count := sum(ask(pipes, "count"))) < want and time.monotonic() < until:
        if count != last:
            last, moved = count, time.monotonic()
        elif time.monotonic() - moved > STALL:
            return
        await asyncio.sleep(0.02)


def check(reports, want):
    """(frames, lost, duplicated, out_of_order) over every viewer's report; ``want``: the seqs each must get."""
    frames = lost = duplicated = disorder = 0
    for _url, seqs, *_ in reports:
        frames += len(seqs)
        duplicated += len(seqs) - len(set(seqs))
        lost += len(want - set(seqs))
        disorder += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
    return frames, lost, duplicated, disorder


def cpu_now(pids):
    """CPU seconds so far of each process; None for an unknown pid (``cpu_seconds(None)`` is this process)."""
    return [None if pid is None else cpu_seconds(pid) for pid in pids]


def cpu_since(before, pids):
    return [None if was is None else cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True)]


def assign(args, daphnes, sessions, tokens):
    """url -> Daphne for each viewer's socket, and ``(url, headers, origin)`` per viewer: viewer n on Daphne n mod N,
    each Daphne's viewers spread over the sessions, ``--per-agent`` consecutive viewers sharing an agent's token."""
    work, owner = [], {}
    for n in range(args.viewers):
        daphne = daphnes[n % len(daphnes)]
        url = daphne.view.ws_url(sessions[(n // len(daphnes)) % len(sessions)])
        owner[url] = daphne
        work.append((url, {"Authorization": f"Bearer {tokens[n // args.per_agent]}"}, daphne.view.origin))
    return work, owner


def measure(args, frames, work, owner, servers, writer, sessions, spy=lambda part: [], redis=None):
    """The load against one server: ``work`` (``(url, headers, origin)`` per viewer) spread over ``--clients``
    processes reading ``frames``, idle, then ``--rounds`` rounds posted by the agent ``await writer()`` opens.

    ``servers``: its processes (filled in: connected, memory, CPU, frames); ``owner``: url -> the one holding that
    url's viewers; ``spy(part)``: profilers to run while viewers join and during the rounds. The figures of the
    run, as ``row`` takes them.
    """
    pids = [server.pid for server in servers]
    processes = []
    try:
        for server in servers:
            server.rss_before = rss(server.pid)
        spies = spy("join")
        ctx = multiprocessing.get_context("spawn")
        pipes = []
        for c in range(args.clients):
            here, there = ctx.Pipe()
            process = ctx.Process(target=client_process,
                                  args=(work[c::args.clients], frames, args.deflate, args.connect_timeout, there))
            process.start()
            processes.append(process)
            pipes.append(here)
        joined = [pipe.recv() for pipe in pipes]
        stop_profilers(spies)
        for url, count in sum((j["connected"] for j in joined), collections.Counter()).items():
            owner[url].connected += count
        connected = sum(server.connected for server in servers)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and time.monotonic() - max(ask(pipes, "quiet")) < QUIET:
            time.sleep(0.25)
        for server in servers:
            server.rss_idle = rss(server.pid)
        idle_from, redis_idle_from = cpu_now(pids), cpu_now([redis])
        time.sleep(IDLE)
        for server, spent in zip(servers, cpu_since(idle_from, pids), strict=True):
            server.idle_cpu = spent / IDLE
        (redis_idle,) = cpu_since(redis_idle_from, [redis])

        posted = []  # seconds each round's add_message calls took

        async def rounds():
            times = []
            async with await writer() as agent:
                for n in range(args.rounds):
                    started = time.monotonic()
                    await post_round(agent, sessions, n)
                    posted.append(time.monotonic() - started)
                    times.append(started)
                    await delivered(pipes, connected * (n + 1), ROUND_WAIT)  # the next round once all have this one
                    await asyncio.sleep(args.pause)
            await delivered(pipes, connected * args.rounds, ROUND_WAIT)
            return times

        spies = spy("rounds")
        server_from, redis_from, clients_from = cpu_now(pids), cpu_now([redis]), sum(ask(pipes, "cpu"))
        starts = asyncio.run(rounds())
        for server, spent in zip(servers, cpu_since(server_from, pids), strict=True):
            server.rounds_cpu = spent
        (redis_cpu,) = cpu_since(redis_from, [redis])
        client_cpu = sum(ask(pipes, "cpu")) - clients_from
        stop_profilers(spies)
        reports = [r for part in ask(pipes, "report") for r in part]
        ask(pipes, "stop")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    for url, seqs, *_ in reports:
        owner[url].frames += len(seqs)
    # Every session's messages have seqs 1..rounds (sessions are new and only the rounds write to them).
    frames_got, lost, duplicated, disorder = check(reports, set(range(1, args.rounds + 1)))
    return {"servers": servers, "connected": connected, "connect_s": max(j["connect_s"] for j in joined),
            "failures": [f for j in joined for f in j["failed"]], "deflated": sum(j["deflated"] for j in joined),
            "posted": posted, "starts": starts, "reports": reports, "client_cpu": client_cpu,
            "redis": redis, "redis_cpu": redis_cpu, "redis_idle": redis_idle,
            "frames": frames_got, "lost": lost, "duplicated": duplicated, "disorder": disorder}


def row(name, args, run):
    """The main table's row for one server's ``measure``. CPU per 1,000 frames counts each message once per viewer
    (a duplicate frame is not another delivery)."""
    lasts = []
    for n, started in enumerate(run["starts"]):
        arrivals = [arrived[n + 1] for _, _, arrived, _ in run["reports"] if n + 1 in arrived]
        if arrivals:
            lasts.append(max(arrivals) - started)
    # Each message (a session's seq): from its storing to its last viewer's receipt, the fan-out alone.
    fan_out = collections.defaultdict(float)
    for url, _, _, after_stored in run["reports"]:
        session = re.search(r"session_[0-9a-f]{16}", url).group()
        for seq, delay in after_stored.items():
            fan_out[session, seq] = max(fan_out[session, seq], delay)
    servers, connected = run["servers"], run["connected"]
    deliveries = run["frames"] - run["duplicated"]
    return [name, f"{args.viewers} viewers / {args.sessions} session(s)", f"{connected}/{args.viewers}",
            round(run["connect_s"], 1), ms(percentile(run["posted"], 0.5)), ms(percentile(lasts, 0.5)),
            ms(max(lasts) if lasts else None), ms(percentile(list(fan_out.values()), 0.5)),
            per_k(sum(server.rounds_cpu for server in servers), deliveries), per_k(run["client_cpu"], deliveries),
            round(sum(server.idle_cpu for server in servers), 2),
            round(sum(server.idle_kib for server in servers) / max(connected, 1), 1),
            run["lost"], run["duplicated"], run["disorder"]]


def run_ours(args, folder):
    """Our stack under the load: its ``measure``."""
    stack, daphnes = start(args, folder)
    try:
        if args.client == "lean":
            writer = functools.partial(LeanAgent.open, stack, "fan-writer", permissions=("read", "write"))
        else:
            writer = functools.partial(stack.agent, "fan-writer")
        sessions = asyncio.run(make_sessions(writer, args.sessions))
        tokens = mint_tokens(stack, -(-args.viewers // args.per_agent))
        work, owner = assign(args, daphnes, sessions, tokens)
        redis = redis_pid(args.redis) if args.layer == "redis" else None
        return measure(args, OurFrames, work, owner, daphnes, writer, sessions,
                       spy=lambda part: profilers(args, part, daphnes), redis=redis)
    finally:
        stack.stop()


def peer_skipped(args):
    """Why the peer is left out of this run (None: it runs). It is one process on its own in-memory fan-out, so it
    is compared with our single-process in-memory configuration only."""
    if args.no_peer:
        return "--no-peer"
    if args.daphnes > 1 or args.layer != "memory":
        return "it is one process without a shared layer: compared with one Daphne on the in-memory layer only"
    if args.deflate:
        return "compared without --deflate only (clients offering permessage-deflate)"
    if args.client != "fastmcp":
        return "its writer is fastmcp's client: compared with --client fastmcp only"
    return None


def run_peer(args, folder):
    """The peer under the same load: its ``measure``. Its viewers send no token (it asks none)."""
    peer = Peer(ensure_peer(args.peer_venv), folder).start()
    try:
        server = Server(None, peer.process.pid)

        async def writer():
            return PeerAgent(peer, "fan-writer")

        sessions = asyncio.run(make_sessions(writer, args.sessions))
        work = [(peer.ws(sessions[n % len(sessions)], None)[0], {}, None) for n in range(args.viewers)]
        return measure(args, PeerFrames, work, {url: server for url, _, _ in work}, [server], writer, sessions)
    finally:
        peer.stop()


def run(args, folder):
    raise_nofile()  # before the servers start: they inherit the limit
    ours = run_ours(args, Path(folder) / "ours")
    rows = [row("ours", args, ours)]
    peer_note = None
    if (skipped := peer_skipped(args)) is None:
        try:
            peer = run_peer(args, Path(folder) / "peer")
        except Exception as exc:  # noqa: BLE001 - the peer failing is reported, our run stands
            peer_note = f"peer {PEER_VERSION}: not measured: {type(exc).__name__}: {exc}"[:1000]
            with contextlib.suppress(OSError):  # its own words, when it wrote any
                said = (Path(folder) / "peer" / "peer.log").read_text(errors="replace").strip().splitlines()[-5:]
                peer_note += "".join(f"\n  {line[:300]}" for line in said)
        else:
            rows.append(row(f"peer {PEER_VERSION}", args, peer))
            if peer["failures"]:
                peer_note = "peer connect failures (first few):\n  " + "\n  ".join(peer["failures"])
    elif not args.no_peer:
        peer_note = f"peer {PEER_VERSION}: left out: {skipped}"
    daphnes = ours["servers"]
    where = "one Daphne" if args.daphnes == 1 else f"{args.daphnes} Daphne processes"
    layer = "in-memory layer" if args.layer == "memory" else "Redis layer"
    print(f"fan-out, {where} ({layer}), {args.clients} client processes, {args.per_agent} sockets per "
          f"agent, {args.rounds} rounds, permessage-deflate "
          f"{'offered by clients and accepted by the server' if args.deflate else 'off (clients do not offer it)'} "
          f"(SCS_WS_DEFLATE={int(args.deflate)}), accepted on {ours['deflated']} connections")
    if len(rows) > 1:
        print(f"peer: shared-context-server {PEER_VERSION}, one process (MCP over HTTP and its WebSocket server), "
              "the same viewers and rounds, no token (it asks none); connected once the handshake is done")
    print(table(["server", "load", "connected", "connect s", "posts p50 ms", "last p50 ms", "last max ms",
                 "stored-last p50 ms", "server CPU s/1k frames", "client CPU s/1k frames", "idle CPU",
                 "idle KiB/conn", "lost", "dup", "disorder"], rows))
    if peer_note:
        print(peer_note)
    print()
    print(table(["process", "viewers", "frames", "CPU s (rounds)", "CPU s/1k own frames", "CPU s/1k all frames",
                 "idle CPU", "idle KiB/conn"],
                per_process(daphnes, ours["frames"], ours["redis"], ours["redis_cpu"], ours["redis_idle"])))
    if ours["failures"]:
        print("connect failures (first few):", *ours["failures"], sep="\n  ")
    # The exit status is about our run only: the peer losing or duplicating frames is reported, not a failure here.
    return 1 if ours["lost"] or ours["duplicated"] or ours["disorder"] or ours["connected"] < args.viewers else 0


def per_process(daphnes, frames, redis, redis_cpu, redis_idle):
    """The second table's rows: each Daphne, their total, and Redis when its CPU could be read."""
    rows = [[f"Daphne {n} (:{daphne.view.ws_port})", daphne.connected, daphne.frames, round(daphne.rounds_cpu, 2),
             per_k(daphne.rounds_cpu, daphne.frames), per_k(daphne.rounds_cpu, frames), round(daphne.idle_cpu, 2),
             round(daphne.idle_kib / max(daphne.connected, 1), 1)] for n, daphne in enumerate(daphnes, 1)]
    connected = sum(daphne.connected for daphne in daphnes)
    cpu = sum(daphne.rounds_cpu for daphne in daphnes)
    rows.append([f"total, {len(daphnes)} Daphne", connected, frames, round(cpu, 2), per_k(cpu, frames),
                 per_k(cpu, frames), round(sum(daphne.idle_cpu for daphne in daphnes), 2),
                 round(sum(daphne.idle_kib for daphne in daphnes) / max(connected, 1), 1)])
    if redis is not None and redis_cpu is not None:
        rows.append([f"Redis (pid {redis}, shared)", None, None, round(redis_cpu, 2), None, per_k(redis_cpu, frames),
                     round(redis_idle / IDLE, 2), None])
    return rows


def per_k(seconds, frames):
    """CPU seconds per 1,000 frames (None without frames)."""
    return round(seconds * 1000 / frames, 3) if frames else None


def ms(seconds):
    return None if seconds is None else round(seconds * 1000)


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def seconds(text):
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text}")
    return value


def redis_problem(url):
    """Why the Redis at ``url`` cannot carry the run, or None when it answers."""
    import redis

    if not url.startswith(("redis://", "rediss://", "unix://")):
        return "--redis must be a redis://, rediss:// or unix:// URL"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        return f"Redis did not answer ({type(exc).__name__}: {exc})"
    return None


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=positive, default=1000)
    parser.add_argument("--sessions", type=positive, default=1)
    parser.add_argument("--per-agent", type=positive, default=5, help="sockets per agent (within the per-viewer cap)")
    parser.add_argument("--clients", type=positive, default=4, help="client processes")
    parser.add_argument("--rounds", type=positive, default=10)
    parser.add_argument("--pause", type=seconds, default=0.3, help="seconds between rounds")
    parser.add_argument("--daphnes", type=positive, default=1, help="Daphne processes, viewers spread evenly over them")
    parser.add_argument("--layer", choices=("memory", "redis"),
                        help="channel layer (default: memory with one Daphne, redis with more)")
    parser.add_argument("--redis", metavar="URL", help="Redis for --layer redis (default: SCS_BENCH_REDIS_URL, "
                        "SCS_TEST_REDIS_URL, redis://127.0.0.1:6379/0)")
    parser.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate, the server accepts")
    parser.add_argument("--connect-timeout", type=seconds, default=300.0)
    parser.add_argument("--client", choices=CLIENTS, default="fastmcp",
                        help="the rounds' writer: fastmcp's MCP client, or the same requests from bench.mcp_http")
    parser.add_argument("--no-peer", action="store_true", help="our row only (not the peer's)")
    parser.add_argument("--peer-venv", type=Path, metavar="DIR",
                        default=Path(os.environ.get("SCS_PEER_VENV", PEER_VENV)),
                        help="the peer's virtualenv (installed there when missing; default .cache/peer-venv)")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="py-spy flame graphs: PREFIX-join.svg, -rounds.svg (each Daphne)")
    parser.add_argument("--profile-format", choices=("flamegraph", "raw"), default="flamegraph",
                        help="raw: collapsed stacks, one line each")
    args = parser.parse_args(argv)
    args.layer = args.layer or ("memory" if args.daphnes == 1 else "redis")
    if args.layer == "memory" and args.daphnes > 1:
        parser.error("the in-memory layer lives in one process: several Daphne processes need --layer redis")
    if args.layer == "memory" and args.redis:
        parser.error("--redis is for --layer redis")
    if args.viewers < max(args.daphnes, args.clients):
        parser.error("every Daphne process and every client process needs a viewer: --viewers is too small")
    args.redis = (args.redis or os.environ.get("SCS_BENCH_REDIS_URL") or os.environ.get("SCS_TEST_REDIS_URL")
                  or "redis://127.0.0.1:6379/0")
    if args.layer == "redis" and (problem := redis_problem(args.redis)):
        parser.error(problem)
    return args


def main(argv=None):
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="scs-fanout-") as folder:
        return run(args, folder)


if __name__ == "__main__":
    sys.exit(main())
