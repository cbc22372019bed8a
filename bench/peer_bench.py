"""Against the peer: this server and shared-context-server 1.1.10, same machine, same client, same workload.

``python -m bench peer [--messages 200] [--agents 8] [--per-agent 25] [--rounds 2]
[--viewers 1000] [--fanout-rounds 5] [--no-peer] [--only compare|fanout] [--peer-venv DIR] [--redis URL]``

1. Comparison, in alternating rounds (ours, peer, peer, ours, …), both servers up
   throughout: one agent adds ``--messages`` messages one at a time, each waited
   for at one WebSocket viewer (end-to-end latency: from just before the
   ``add_message`` call to the frame; and the call's own latency); then
   ``--agents`` agents add ``--per-agent`` messages each at once (throughput of
   the calls). Every viewer's frames are matched by content to count duplicates
   and losses.
2. Fan-out: one message to ``--viewers`` viewers, time until the last one has
   it, on one Daphne (in-memory layer), on two Daphne processes with Redis
   (viewers split between them), and on the peer. CPU seconds each server
   process spent per 1,000 frames delivered come from /proc/<pid>/stat.

The peer is installed on demand into its own virtualenv (``--peer-venv``) with the
dependency versions of its lock file; nothing of it is imported here. Its
servers: ``shared-context-server --transport http`` serves MCP on HTTP_PORT and
starts its WebSocket server on WEBSOCKET_PORT in the same process (viewers use
``/ws/<session_id>``, no authentication). Every process listens on 127.0.0.1 and
is stopped at the end; every wait is bounded.
"""

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from bench import cpu_seconds, redis_pid, summary_ms, table
from tests.helpers import new_session
from tests.stack import ROOT, Stack, end, free_port, wait_for

PEER_VERSION = "1.1.10"
PEER_PINS = [
    "fastmcp==2.11.3", "mcp==1.12.4", "fastapi==0.116.1", "starlette==0.47.2", "uvicorn==0.35.0",
    "websockets==15.0.1", "sqlalchemy==2.0.43", "pydantic==2.11.7", "pydantic-settings==2.10.1",
    "aiosqlite==0.21.0", f"shared-context-server=={PEER_VERSION}",
]
FRAME_WAIT = 5.0  # seconds a frame may take before it counts as lost
SETTLE = 120.0  # seconds viewers may take to connect and go quiet
IDLE = 5.0  # seconds of idle CPU measured with every viewer connected
TARGETS = {"e2e_p50_ratio": 3.0, "throughput_ratio": 10.0, "fanout_ms": 250.0}






# The peer, in its own virtualenv


# A cache of the checkout, not the data folder: that one is kept private (0600 files), which a virtualenv is not.
PEER_VENV = ROOT / ".cache" / "peer-venv"


def ensure_peer(venv):
    """The peer's executable, installing it first when needed; raises RuntimeError saying why not."""
    executable = venv / "bin" / "shared-context-server"
    if executable.exists():
        return executable
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"installing shared-context-server {PEER_VERSION} into {venv} ...", flush=True)
    steps = [[base, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "--quiet", *PEER_PINS]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(step[:3])} took longer than 15 minutes") from None
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:4])} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return executable


class Peer:
    """shared-context-server over HTTP (MCP) with its WebSocket server, on free ports."""

    name = "peer"

    def __init__(self, executable, folder):
        self.executable, self.folder = executable, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mcp_port, self.ws_port = free_port(), free_port()
        self.api_key = secrets.token_urlsafe(32)
        self.process = None

    def start(self):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.folder),
            "API_KEY": self.api_key, "JWT_SECRET_KEY": secrets.token_urlsafe(32),
            "JWT_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key
            "DATABASE_PATH": str(self.folder / "peer.db"),
            "HTTP_PORT": str(self.mcp_port), "WEBSOCKET_HOST": "127.0.0.1", "WEBSOCKET_PORT": str(self.ws_port),
            "ENVIRONMENT": "development", "LOG_LEVEL": "WARNING",
        }
        log = open(self.folder / "peer.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [str(self.executable), "--transport", "http", "--host", "127.0.0.1", "--port", str(self.mcp_port),
             "--log-level", "WARNING"],
            cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for(f"http://127.0.0.1:{self.mcp_port}/health", timeout=60, process=self.process)
        wait_for(f"http://127.0.0.1:{self.ws_port}/health", timeout=30, process=self.process)
        return self

    def stop(self):
        end(self.process)

    def pids(self):
        return {"peer": self.process.pid}

    def mcp_client(self):
        return Client(StreamableHttpTransport(f"http://127.0.0.1:{self.mcp_port}/mcp/",
                                              headers={"X-API-Key": self.api_key}))

    def ws(self, session_id, token, port=None):
        return f"ws://127.0.0.1:{self.ws_port}/ws/{session_id}", {}, None


class Ours:
    """This server: ``tests.stack.Stack`` (Daphne + sidecar), optionally with more Daphne processes."""

    def __init__(self, name, folder, **env):
        self.name = name
        # Every viewer watches with one agent's token: lift the per-viewer connection cap.
        self.stack = Stack(folder, SCS_MAX_CONNECTIONS_PER_VIEWER=0, **env)

    def start(self):
        self.stack.start()
        return self

    def add_daphne(self):
        return self.stack.add_daphne()

    def stop(self):
        self.stack.stop()

    def pids(self):
        pids = {"daphne": self.stack.daphne.pid, "sidecar": self.stack.sidecar.pid}
        for n, process in enumerate(self.stack.more, start=2):
            pids[f"daphne{n}"] = process.pid
        return pids

    def mcp_client(self):
        return self.stack.mcp_client()

    def ws(self, session_id, token, port=None):
        view = self.stack.via(ws_port=port)  # each Daphne accepts its own origin
        return view.ws_url(session_id), {"Authorization": f"Bearer {token}"}, view.origin


# The same client for both


class Agent:
    def __init__(self, target, agent_id):
        self.target, self.agent_id = target, agent_id
        self.client = target.mcp_client()
        self.token = None

    async def __aenter__(self):
        await self.client.__aenter__()
        result = await self.raw("authenticate_agent", agent_id=self.agent_id, agent_type="claude",
                                requested_permissions=["read", "write"])
        assert result and result.get("success"), result
        self.token = result["token"]
        return self

    async def __aexit__(self, *exc):
        await self.client.__aexit__(*exc)

    async def raw(self, tool, **arguments):
        """The tool's structured answer; a failure without one as ``{"success": False, "error": <its text>}``."""
        result = await self.client.call_tool(tool, arguments, raise_on_error=False)
        if result.structured_content is None:
            text = " ".join(getattr(part, "text", "") for part in result.content or [])
            return {"success": False, "error": text[:300] or "an answer without structured content"}
        return result.structured_content

    async def call(self, tool, **arguments):
        return await self.raw(tool, auth_token=self.token, **arguments)

    async def new_session(self):
        return await new_session(self, "benchmark")


class Viewer:
    """A WebSocket viewer noting when each message (by content) first arrived, and how often."""

    def __init__(self, target, session_id, token, port=None):
        self.url, self.headers, self.origin = target.ws(session_id, token, port)
        self.first = {}
        self.count = collections.Counter()
        self.frames = 0
        self.last_frame = time.perf_counter()
        self.caught_up = asyncio.Event()
        self.waiters = {}
        self.socket = None
        self.reader = None

    async def connect(self):
        self.socket = await websockets.connect(self.url, additional_headers=self.headers, origin=self.origin,
                                               open_timeout=SETTLE, max_size=None, ping_interval=None)
        self.reader = asyncio.create_task(self.read())
        return self

    async def read(self):
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.socket:
                now = time.perf_counter()
                self.frames += 1
                self.last_frame = now
                if '"new_message"' not in text:
                    if '"caught_up"' in text:
                        self.caught_up.set()
                    continue
                content = json.loads(text)["data"]["content"]
                self.count[content] += 1
                if content not in self.first:
                    self.first[content] = now
                    waiter = self.waiters.pop(content, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(now)

    async def arrival(self, content, within=FRAME_WAIT):
        if content in self.first:
            return self.first[content]
        waiter = self.waiters.setdefault(content, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(waiter, within)
        except TimeoutError:
            return None

    async def close(self):
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await self.reader


def tally(viewer, sent):
    """``(lost, duplicated)`` frames of ``sent`` contents at ``viewer``."""
    lost = sum(1 for content in sent if viewer.count[content] == 0)
    duplicated = sum(max(0, viewer.count[content] - 1) for content in sent)
    return lost, duplicated


# Phases


async def sequential(target, count, label):
    async with Agent(target, f"seq-{label}") as agent:
        session_id = await agent.new_session()
        viewer = await Viewer(target, session_id, agent.token).connect()
        await asyncio.sleep(0.3)  # the peer registers a viewer just after accepting it
        e2e, calls, sent = [], [], []
        try:
            for n in range(count):
                content = f"{label} sequential {n}"
                started = time.perf_counter()
                result = await agent.call("add_message", session_id=session_id, content=content)
                returned = time.perf_counter()
                assert result and result.get("success"), result
                sent.append(content)
                calls.append(returned - started)
                arrived = await viewer.arrival(content)
                if arrived is not None:
                    e2e.append(arrived - started)
            await asyncio.sleep(0.5)  # late duplicates
            lost, duplicated = tally(viewer, sent)
        finally:
            await viewer.close()
    return {"e2e": e2e, "calls": calls, "lost": lost, "duplicated": duplicated, "sent": len(sent)}


async def concurrent(target, agents_count, per_agent, label):
    agents = [Agent(target, f"par-{label}-{k}") for k in range(agents_count)]
    for agent in agents:
        await agent.__aenter__()
    try:
        session_id = await agents[0].new_session()
        viewer = await Viewer(target, session_id, agents[0].token).connect()
        await asyncio.sleep(0.3)

        async def write(agent):
            contents = []
            for n in range(per_agent):
                content = f"{label} {agent.agent_id} {n}"
                result = await agent.call("add_message", session_id=session_id, content=content)
                assert result and result.get("success"), result
                contents.append(content)
            return contents

        started = time.perf_counter()
        sent = [c for contents in await asyncio.gather(*(write(agent) for agent in agents)) for c in contents]
        elapsed = time.perf_counter() - started
        await asyncio.gather(*(viewer.arrival(content) for content in sent))
        delivered = time.perf_counter() - started
        await asyncio.sleep(0.5)
        lost, duplicated = tally(viewer, sent)
        await viewer.close()
    finally:
        for agent in agents:
            await agent.__aexit__(None, None, None)
    return {"rate": len(sent) / elapsed, "delivered_rate": (len(sent) - lost) / delivered, "lost": lost,
            "duplicated": duplicated, "sent": len(sent)}


async def fanout(target, viewers_count, rounds, ports=(None,), redis_url=None):
    """One message at a time to ``viewers_count`` viewers spread over ``ports``; figures per round."""
    async with Agent(target, "fan-writer") as agent:
        session_id = await agent.new_session()
        viewers = [Viewer(target, session_id, agent.token, ports[n % len(ports)]) for n in range(viewers_count)]
        joined = time.perf_counter()

        async def join():
            for start in range(0, viewers_count, 50):  # in batches: Daphne refuses a handshake not accepted in 5 s
                batch = viewers[start:start + 50]
                await asyncio.gather(*(viewer.connect() for viewer in batch))
                if isinstance(target, Ours):
                    await asyncio.gather(*(v.caught_up.wait() for v in batch))

        try:
            await asyncio.wait_for(join(), SETTLE)
        except (TimeoutError, OSError, EOFError, websockets.InvalidHandshake) as exc:
            await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)
            ready = sum(1 for viewer in viewers if viewer.caught_up.is_set() or viewer.frames)
            return {"error": f"only {ready} of {viewers_count} viewers joined within {SETTLE:.0f} s "
                             f"({type(exc).__name__} {exc})".strip()}
        deadline = time.perf_counter() + SETTLE
        while time.perf_counter() < deadline:  # quiet: no frame (presence, hello, ...) for a second
            await asyncio.sleep(0.25)
            if time.perf_counter() - max(v.last_frame for v in viewers) > 1.0:
                break
        join_seconds = time.perf_counter() - joined
        pids = target.pids()
        redis = redis_pid(redis_url) if redis_url else None
        if redis:
            pids["redis"] = redis
        idle_from = {name: cpu_seconds(pid) for name, pid in pids.items()}
        frames_before = sum(v.frames for v in viewers)
        await asyncio.sleep(IDLE)  # what the server spends with everyone connected and nothing sent
        idle = {name: round((cpu_seconds(pid) - idle_from[name]) / IDLE, 2) for name, pid in pids.items()
                if idle_from[name] is not None}
        idle_frames = sum(v.frames for v in viewers) - frames_before
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        times, lost, duplicated, sent = [], 0, 0, []
        try:
            for n in range(rounds):
                content = f"fan-out {n}"
                started = time.perf_counter()
                result = await agent.call("add_message", session_id=session_id, content=content)
                assert result and result.get("success"), result
                sent.append(content)
                arrivals = await asyncio.gather(*(viewer.arrival(content, within=30) for viewer in viewers))
                got = [a for a in arrivals if a is not None]
                if got:
                    times.append(max(got) - started)
                await asyncio.sleep(0.3)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()
                     if before[name] is not None and cpu_seconds(pid) is not None}
            for viewer in viewers:
                viewer_lost, viewer_duplicated = tally(viewer, sent)
                lost += viewer_lost
                duplicated += viewer_duplicated
        finally:
            await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)
    frames = sum(sum(viewer.count[c] for c in sent) for viewer in viewers)
    return {"times": times, "join_s": join_seconds, "cpu": spent, "idle": idle, "idle_frames": idle_frames,
            "frames": frames, "lost": lost, "duplicated": duplicated, "viewers": viewers_count, "rounds": rounds}


# Running and reporting


async def compare(targets, args):
    results = {target.name: {"e2e": [], "calls": [], "rates": [], "lost": 0, "duplicated": 0, "sent": 0}
               for target in targets}
    for round_number in range(args.rounds):
        order = targets if round_number % 2 == 0 else list(reversed(targets))
        for target in order:
            label = f"{target.name}-r{round_number}"
            print(f"  round {round_number + 1}: {target.name}", flush=True)
            seq = await sequential(target, args.messages, label)
            par = await concurrent(target, args.agents, args.per_agent, label)
            into = results[target.name]
            into["e2e"] += seq["e2e"]
            into["calls"] += seq["calls"]
            into["rates"].append(par["rate"])
            into["seq_rate"] = into.get("seq_rate", []) + [len(seq["calls"]) / sum(seq["calls"])]
            for key in ("lost", "duplicated", "sent"):
                into[key] += seq[key] + par[key]
    return results


def compare_report(results):
    rows = []
    for name, r in results.items():
        e2e, calls = summary_ms(r["e2e"]), summary_ms(r["calls"])
        rows.append([name, e2e["p50"], e2e["p99"], calls["p50"], calls["p99"],
                     round(sum(r["seq_rate"]) / len(r["seq_rate"]), 1),
                     round(sum(r["rates"]) / len(r["rates"]), 1), r["sent"], r["lost"], r["duplicated"]])
    print(table(["server", "e2e p50 ms", "e2e p99 ms", "add_message p50 ms", "add_message p99 ms",
                 "sequential msg/s", "8-agent msg/s", "sent", "lost", "duplicated"], rows))
    if "peer" in results and "ours" in results:
        ours, peer = results["ours"], results["peer"]
        e2e_ratio = summary_ms(peer["e2e"])["p50"] / summary_ms(ours["e2e"])["p50"] if peer["e2e"] else None
        call_ratio = summary_ms(peer["calls"])["p50"] / summary_ms(ours["calls"])["p50"]
        rate_ratio = (sum(ours["rates"]) / len(ours["rates"])) / (sum(peer["rates"]) / len(peer["rates"]))
        print()
        if e2e_ratio is not None:
            print(f"end-to-end p50: peer / ours = {e2e_ratio:.1f}x  (target >= {TARGETS['e2e_p50_ratio']}x)")
        print(f"add_message p50: peer / ours = {call_ratio:.1f}x")
        print(f"8-agent throughput: ours / peer = {rate_ratio:.1f}x  (target >= {TARGETS['throughput_ratio']}x)")


def fanout_report(rows):
    lines = []
    for label, r in rows:
        if "error" in r:
            print(f"{label}: not measured: {r['error']}")
            continue
        stats = summary_ms(r["times"])
        rate = round(r["viewers"] / (stats["p50"] / 1000)) if stats["p50"] else None
        per_1000 = {name: round(seconds * 1000 / max(1, r["frames"]), 3) for name, seconds in r["cpu"].items()}
        lines.append([label, r["viewers"], stats["p50"], stats["max"], rate, round(r["join_s"], 1),
                      ", ".join(f"{name} {value}" for name, value in per_1000.items()),
                      ", ".join(f"{name} {value}" for name, value in r["idle"].items()),
                      round(r["idle_frames"] / IDLE), r["lost"], r["duplicated"]])
    print(table(["fan-out", "viewers", "last p50 ms", "last max ms", "frames/s", "join s",
                 "CPU s per 1,000 frames", "idle CPU s/s", "idle frames/s", "lost", "duplicated"], lines))
    print(f"(target: last viewer within {TARGETS['fanout_ms']:.0f} ms)")


async def run(args, folder):
    targets, started = [], []
    try:
        ours = Ours("ours", folder / "ours").start()
        started.append(ours)
        targets.append(ours)
        if not args.no_peer:
            try:
                executable = ensure_peer(args.peer_venv)
                peer = Peer(executable, folder / "peer").start()
                started.append(peer)
                targets.append(peer)
            except (RuntimeError, TimeoutError, OSError) as exc:
                print(f"the peer did not run, so only our figures follow: {exc}", flush=True)
        if args.only in (None, "compare"):
            print(f"comparison: {args.rounds} alternating rounds of {args.messages} sequential messages and "
                  f"{args.agents} agents x {args.per_agent}", flush=True)
            compare_report(await compare(targets, args))
        if args.only == "compare":
            return 0
        print(f"\nfan-out: {args.fanout_rounds} messages to {args.viewers} viewers each", flush=True)
        rows = [("ours, 1 Daphne", await fanout(ours, args.viewers, args.fanout_rounds))]
        redis_up = False
        try:
            import redis

            redis.Redis.from_url(args.redis, socket_timeout=2).ping()
            redis_up = True
        except Exception as exc:
            print(f"Redis at {args.redis} did not answer ({exc}); the two-Daphne fan-out is left out")
        if redis_up:
            two = Ours("ours-redis", folder / "ours-redis", CHANNEL_LAYER_URL=args.redis,
                       CHANNEL_LAYER_PREFIX=f"bench-{secrets.token_hex(4)}").start()
            started.append(two)
            second = two.add_daphne()
            rows.append(("ours, 2 Daphne + Redis", await fanout(
                two, args.viewers, args.fanout_rounds, ports=(None, second), redis_url=args.redis)))
        if len(targets) > 1:
            rows.append(("peer", await fanout(targets[1], args.viewers, args.fanout_rounds)))
        fanout_report(rows)
    finally:
        for target in reversed(started):
            target.stop()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench peer", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300, help="sequential messages per round")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--per-agent", type=int, default=100, help="messages per agent per round (steady state)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--fanout-rounds", type=int, default=5)
    parser.add_argument("--no-peer", action="store_true", help="our figures only")
    parser.add_argument("--only", choices=["compare", "fanout"], help="run one part")
    parser.add_argument("--peer-venv", type=Path,
                        default=Path(os.environ.get("SCS_PEER_VENV", PEER_VENV)))
    parser.add_argument("--redis", default=os.environ.get("SCS_BENCH_REDIS_URL")
                        or os.environ.get("SCS_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scs-peer-bench-") as folder:
        return asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
