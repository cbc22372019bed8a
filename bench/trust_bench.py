"""Abuse by a trusted client: what one heavy caller costs everyone else.

``python -m bench trust [--messages 150] [--big 1000] [--sockets 100] [--only search,read,replay] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``) on free loopback
ports in a temporary folder, seeds the database directly (messages of
``--size`` characters, default 100,000, with their seqs and the session's
``last_seq``), and measures in one run:

1. search: another agent's ``add_message`` + ``get_messages(limit=10)`` round
   trip (on a small session of its own, paced at ``--probe-rate`` pairs per
   second) and the sidecar's ``/health``, first alone ("normal"), then while
   one client runs ``search_context(query=<1,000 characters>,
   fuzzy_threshold=0)`` over ``--messages`` messages again and again for
   ``--search-seconds`` (at least once). The figure to watch is the ratio of
   the two p99s (goal: within 2x).
2. read: a fresh sidecar's RSS while ``--readers`` read-only agents call
   ``get_messages(limit=1000)`` at once over ``--big`` messages: before, peak
   (VmRSS sampled every ~20 ms, and VmHWM) and ``--settle`` seconds after.
3. replay: a fresh Daphne's RSS while ``--sockets`` WebSockets ask a non-staff
   viewer's replay of the ``--big`` messages (``?since=0``) and never read
   (raw sockets with a small SO_RCVBUF that are never read after the
   handshake): before, peak and after ``--hold`` seconds; meanwhile the
   latency of live messages to another viewer that reads. A socket reset
   during its handshake is tried again ``--retries`` times; one refused
   (an HTTP status, or a close frame before any message) is counted.
   ``--distinct-viewers`` gives each socket its own agent (per-viewer caps).

Calls whose answers are large (the search, the reads) go through a minimal
MCP client that streams the answer through without building it in memory and
reads only its last bytes (``success``, ``code``, ``count``, ``has_more``,
``truncated``); the probe uses the real MCP client. A refusal (``RATE_LIMITED``
or any other code), a truncated search, a partial page and a refused socket are
counted, not treated as failures. The client's own event-loop lag and CPU are
reported for each phase, to show whether the load generator kept up.
"""

import argparse
import asyncio
import base64
import collections
import contextlib
import fcntl
import json
import os
import random
import re
import signal
import socket
import struct
import tempfile
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench import cpu_seconds, summary_ms, table
from bench.e2e import TimedWatcher
from bench.search_bench import WORDS
from bench.soak_bench import raise_open_files_limit
from tests.stack import Stack

PARTS = ("search", "read", "replay")
GOAL_P99_RATIO = 2.0
QUERY_CHARS = 1000
CONNECT_CONCURRENCY = 20  # handshakes in flight at once
# The server reset the connection before its handshake answer arrived: Daphne's 5 s opening-handshake
# timeout passed, or the connection was dropped with its answer still unsent.
RESET = "reset during the handshake"
PROTOCOL_VERSION = "2025-06-18"
FULL_PARSE_BYTES = 1 << 20  # answers up to this size are parsed; larger ones are only scanned at the end
TAIL_BYTES = 256 * 1024
ANSWER_FIELDS = ("success", "code", "count", "has_more", "truncated", "scanned", "message_count")
FIELD_RE = re.compile(
    r'\\?"(' + "|".join(ANSWER_FIELDS) + r')\\?"\s*:\s*(true|false|null|-?\d+(?:\.\d+)?|\\?"[A-Za-z_]*\\?")'
)

# Seeding runs inside ``manage.py shell`` with the stack's environment; it prints the session ids as JSON.
SEED_SCRIPT = """
import json, random
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from realtime.models import Message, Session

rng = random.Random(11)
words = {words!r}
pool = " ".join(rng.choices(words, k=3 * {size} // 7 + 200_000))
ids = {{}}
for name, count in {sessions!r}:
    if not count:
        continue
    session = Session.objects.create(purpose=f"trust bench: {{name}}", created_by="trust-seed", last_seq=count)
    start = timezone.now() - timedelta(seconds=count)
    batch = []
    for seq in range(1, count + 1):
        offset = rng.randrange(0, len(pool) - {size})
        batch.append(Message(session=session, seq=seq, sender="trust-seed", sender_type="claude",
                             content=pool[offset:offset + {size}], visibility="public",
                             timestamp=start + timedelta(seconds=seq)))
        if len(batch) == 25:
            with transaction.atomic():
                Message.objects.bulk_create(batch)
            batch = []
    with transaction.atomic():
        Message.objects.bulk_create(batch)
    ids[name] = session.id
print("SEEDED " + json.dumps(ids))
"""


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench trust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts to run, comma-separated ({','.join(PARTS)})")
    parser.add_argument("--size", type=int, default=100_000, help="characters per seeded message (default 100000)")
    parser.add_argument("--messages", type=int, default=150, help="messages the search scans (default 150)")
    parser.add_argument("--normal-seconds", type=float, default=10.0, help="probe alone (default 10)")
    parser.add_argument("--search-seconds", type=float, default=30.0,
                        help="keep starting searches for this long; at least one (default 30)")
    parser.add_argument("--probe-rate", type=float, default=20.0,
                        help="probe round trips per second (default 20)")
    parser.add_argument("--big", type=int, default=1000, help="messages read and replayed (default 1000)")
    parser.add_argument("--readers", type=int, default=4, help="concurrent get_messages(limit=1000) (default 4)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before the 'after' RSS (default 3)")
    parser.add_argument("--sockets", type=int, default=100, help="non-reading replay sockets (default 100)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the sockets stay open (default 10)")
    parser.add_argument("--distinct-viewers", action="store_true",
                        help="one read-only agent per socket instead of one for all (per-viewer caps)")
    parser.add_argument("--retries", type=int, default=1,
                        help="times a socket reset during its handshake is tried again (default 1)")
    parser.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of the non-reading sockets")
    parser.add_argument("--rss-ceiling-mib", type=int, default=8192,
                        help="kill a process whose RSS passes this, to protect the machine (default 8192)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for both processes (e.g. a cap to try)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs, database) and print it")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    return args


# Measuring instruments


def proc_status(pid):
    """VmRSS and VmHWM of ``pid`` in KiB (None once it is gone)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = int(line.split()[1])
    except OSError:
        return None
    return found


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``interval`` seconds in its own thread; kills it past ``ceiling_kib``."""

    def __init__(self, pid, interval=0.02, ceiling_kib=None):
        super().__init__(daemon=True)
        self.pid, self.interval, self.ceiling_kib = pid, interval, ceiling_kib
        self.peak_kib = 0
        self.samples = 0
        self.max_gap = 0.0
        self.killed_at_kib = None
        self._halt = threading.Event()

    def run(self):
        last = time.monotonic()
        while not self._halt.is_set():
            status = proc_status(self.pid)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            if status is None:
                return
            self.samples += 1
            self.peak_kib = max(self.peak_kib, status["VmRSS"])
            if self.ceiling_kib and status["VmRSS"] > self.ceiling_kib and self.killed_at_kib is None:
                self.killed_at_kib = status["VmRSS"]
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                return
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()
        return {"peak_rss_mib": mib(self.peak_kib), "samples": self.samples,
                "max_sample_gap_ms": round(self.max_gap * 1000, 1),
                "killed_at_rss_mib": mib(self.killed_at_kib)}


class LoopLag:
    """How late this client's event loop wakes from 10 ms sleeps: its own load, if any."""

    def __init__(self, tick=0.01):
        self.tick = tick
        self.lags = []
        self._task = None

    async def _run(self):
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.lags.append(max(0.0, time.perf_counter() - started - self.tick))

    def start(self):
        self.lags = []
        self._task = asyncio.create_task(self._run())

    async def stop(self):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return summary_ms(self.lags)


class CpuShare:
    """CPU seconds of some processes between ``start`` and ``stop``, as a share of one core."""

    def __init__(self, pids):
        self.pids = pids

    def start(self):
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self):
        wall = max(time.monotonic() - self.started, 1e-9)
        shares = {}
        for name, pid in self.pids.items():
            after = cpu_seconds(pid)
            if after is not None and self.before[name] is not None:
                shares[name] = f"{(after - self.before[name]) / wall:.0%}"
        return shares


# A minimal MCP client for large answers


class RawMcp:
    """MCP over streamable HTTP without a framework: large answers are streamed through and counted.

    Only the answer's last ``TAIL_BYTES`` are kept (scanned for ``ANSWER_FIELDS``), so the client costs
    almost nothing while the server builds and sends 100 MB.
    """

    def __init__(self, stack):
        self.url = stack.mcp_url
        self.headers = {"X-API-Key": stack.api_key, "Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json"}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0))
        self.next_id = 0
        self.token = None

    async def open(self, agent_id, agent_type, permissions):
        response = await self.http.post(self.url, headers=self.headers, json={
            "jsonrpc": "2.0", "id": self._id(), "method": "initialize",
            "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "bench-trust", "version": "1"}}})
        response.raise_for_status()
        session = response.headers.get("mcp-session-id")
        if session:
            self.headers["mcp-session-id"] = session
        version = (self._messages(response.text)[-1].get("result") or {}).get("protocolVersion")
        if version:
            self.headers["mcp-protocol-version"] = version
        await self.http.post(self.url, headers=self.headers,
                             json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        answer = await self.call("authenticate_agent", agent_id=agent_id, agent_type=agent_type,
                                 requested_permissions=list(permissions), auth=False)
        if answer["fields"].get("success") is not True:
            raise RuntimeError(f"authenticate_agent failed: {answer}")
        self.token = answer["structured"]["token"]
        return self

    def _id(self):
        self.next_id += 1
        return self.next_id

    @staticmethod
    def _messages(text):
        """JSON-RPC messages of an answer, whether plain JSON or server-sent events."""
        text = text.strip()
        if text.startswith("{"):
            return [json.loads(text)]
        return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]

    async def call(self, tool, auth=True, **arguments):
        """``{"seconds", "first_byte_s", "bytes", "fields", "structured"}``; ``structured`` only for small answers."""
        if auth:
            arguments["auth_token"] = self.token
        body = {"jsonrpc": "2.0", "id": self._id(), "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}}
        started = time.perf_counter()
        first_byte = None
        size = 0
        kept = collections.deque()
        kept_bytes = 0
        head = bytearray()
        async with self.http.stream("POST", self.url, headers=self.headers, json=body) as response:
            async for chunk in response.aiter_raw():
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                if size <= FULL_PARSE_BYTES:
                    head += chunk
                kept.append(chunk)
                kept_bytes += len(chunk)
                while kept_bytes - len(kept[0]) >= TAIL_BYTES:
                    kept_bytes -= len(kept.popleft())
            status = response.status_code
        seconds = time.perf_counter() - started
        structured = None
        if size <= FULL_PARSE_BYTES and status == 200:
            for message in self._messages(head.decode()):
                result = message.get("result")
                if message.get("id") == body["id"] and result:
                    structured = result.get("structuredContent")
        if structured is not None:
            fields = {k: structured[k] for k in ANSWER_FIELDS if k in structured}
        else:
            fields = {}
            for name, value in FIELD_RE.findall(b"".join(kept).decode("utf-8", "replace")):
                fields[name] = json.loads(value.replace('\\"', '"'))  # the last occurrence wins
        if status != 200:
            fields.setdefault("success", False)
            fields.setdefault("code", f"HTTP {status}")
        return {"seconds": seconds, "first_byte_s": first_byte, "bytes": size, "fields": fields,
                "structured": structured}

    async def close(self):
        await self.http.aclose()


def answer_kind(answer):
    """"ok", "truncated", or the refusal's code."""
    fields = answer["fields"]
    if fields.get("success") is False:
        return str(fields.get("code") or "refused")
    if fields.get("truncated"):
        return "truncated"
    # A large answer's "success" comes first, out of the scanned tail; its last fields say it succeeded.
    answered = fields.get("success") is True or {"count", "has_more", "scanned"} & fields.keys()
    return "ok" if answered else "unknown answer"


# Seeding


def seed(stack, sessions, size):
    """Create one public session per ``(name, count)`` with ``count`` messages of ``size`` characters."""
    started = time.perf_counter()
    script = SEED_SCRIPT.format(words=WORDS, size=size, sessions=list(sessions))
    done = stack.manage("shell", "-c", script)
    line = next((line for line in done.stdout.splitlines() if line.startswith("SEEDED ")), None)
    if line is None:
        raise RuntimeError(f"seeding failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(line[len("SEEDED "):]), time.perf_counter() - started


# Part 1: other clients' latency while the worst-case search runs


class Prober:
    """The other agent. After a transport error (counted by the caller) its MCP client is opened afresh."""

    def __init__(self, stack):
        self.stack = stack
        self.agent = None

    async def open(self):
        self.agent = await self.stack.agent("trust-probe", "claude", permissions=("read", "write"))
        return self

    async def call(self, tool, **arguments):
        return await self.agent.call(tool, **arguments)

    async def reopen(self):
        await self.close()
        self.agent = await self.stack.agent("trust-probe", "claude", permissions=("read", "write"))

    async def close(self):
        with contextlib.suppress(Exception):  # a client whose connection broke may fail to close
            await self.agent.close()


async def probe(prober, session_id, rate, samples, errors, stop):
    """``add_message`` + ``get_messages(limit=10)`` every 1/``rate`` s until ``stop``: ``(start, seconds)``."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        try:
            added = await prober.call("add_message", session_id=session_id, content=f"probe {n}")
            read = await prober.call("get_messages", session_id=session_id, limit=10)
        except Exception as exc:  # noqa: BLE001 - a broken connection is a figure, not the end of the run
            errors.append(type(exc).__name__)
            while not stop.is_set():
                try:
                    await prober.reopen()
                    break
                except Exception as again:  # noqa: BLE001
                    errors.append(f"reopen: {type(again).__name__}")
                    await asyncio.sleep(0.5)
            continue
        took = time.monotonic() - started
        failed = [r.get("code") or "failed" for r in (added, read) if not (r or {}).get("success")]
        if failed:
            errors.extend(failed)
        else:
            samples.append((started, took))
        next_at = max(next_at + interval, time.monotonic() - interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))


async def poll_health(http, url, samples, errors, stop, interval=0.1):
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await http.get(url)
            response.raise_for_status()
            samples.append((started, time.monotonic() - started))
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def measured(stack, agent, probe_session, rate, work):
    """Run the probe and the health poll around ``work()``; figures over the time ``work`` reports busy."""
    samples, errors, health, health_errors = [], [], [], []
    stop = asyncio.Event()
    lag, cpu = LoopLag(), CpuShare({"client": "self", "sidecar": stack.sidecar.pid})
    async with httpx.AsyncClient(timeout=60) as http:
        tasks = [asyncio.create_task(probe(agent, probe_session, rate, samples, errors, stop)),
                 asyncio.create_task(poll_health(http, f"http://127.0.0.1:{stack.mcp_port}/health", health,
                                                 health_errors, stop))]
        lag.start()
        cpu.start()
        busy_from, busy_to, extra = await work()
        shares = cpu.stop()
        stop.set()
        await asyncio.gather(*tasks)
        lags = await lag.stop()

    def within(pairs):  # every sample that overlaps the busy time, even in part
        return [took for started, took in pairs if started < busy_to and started + took > busy_from]

    probes, healths = within(samples), within(health)
    return {"seconds": round(busy_to - busy_from, 1), "probe_ms": summary_ms(probes),
            "probe_refusals": dict(collections.Counter(errors)), "health_ms": summary_ms(healths),
            "health_errors": len(health_errors), "client_loop_lag_ms": lags, "cpu": shares, **extra}


async def search_part(stack, args, session_id):
    agent = await Prober(stack).open()
    searcher = await RawMcp(stack).open("trust-searcher", "claude", ("read",))
    try:
        probe_session = (await agent.call("create_session", purpose="trust bench probe"))["session_id"]
        for n in range(20):  # warm up the probe's paths
            await agent.call("add_message", session_id=probe_session, content=f"warm-up {n}")
            await agent.call("get_messages", session_id=probe_session, limit=10)
        rng = random.Random(5)
        query = " ".join(rng.choices(WORDS, k=QUERY_CHARS))[:QUERY_CHARS].strip()

        async def alone():
            started = time.monotonic()
            await asyncio.sleep(args.normal_seconds)
            return started, time.monotonic(), {}

        async def searching():
            searches = []
            started = time.monotonic()
            while not searches or time.monotonic() - started < args.search_seconds:
                begun = time.perf_counter()
                try:
                    answer = await searcher.call("search_context", session_id=session_id, query=query,
                                                 fuzzy_threshold=0)
                except httpx.HTTPError as exc:
                    answer = {"seconds": time.perf_counter() - begun, "fields": {}, "bytes": 0}
                    kind = type(exc).__name__
                else:
                    kind = answer_kind(answer)
                searches.append({"seconds": round(answer["seconds"], 2), "answer": kind,
                                 "scanned": answer["fields"].get("scanned"), "bytes": answer["bytes"]})
                if kind not in ("ok", "truncated"):
                    await asyncio.sleep(0.5)  # refused: do not spin
            return started, time.monotonic(), {"searches": searches}

        normal = await measured(stack, agent, probe_session, args.probe_rate, alone)
        during = await measured(stack, agent, probe_session, args.probe_rate, searching)
    finally:
        await agent.close()
        await searcher.close()
    ratio = (round(during["probe_ms"]["p99"] / normal["probe_ms"]["p99"], 2)
             if during["probe_ms"]["p99"] and normal["probe_ms"]["p99"] else None)
    health_ratio = (round(during["health_ms"]["p99"] / normal["health_ms"]["p99"], 2)
                    if during["health_ms"]["p99"] and normal["health_ms"]["p99"] else None)
    return {"messages": args.messages, "size": args.size, "query_chars": len(query), "normal": normal,
            "during_search": during, "p99_ratio": ratio, "health_p99_ratio": health_ratio}


# Part 2: sidecar memory during concurrent worst-case reads


def restart(stack, which):
    if which == "sidecar":
        stack.kill_sidecar()
        stack.start_sidecar()
    else:
        stack.stop_daphne()
        stack.start_daphne()


async def read_part(stack, args, session_id):
    restart(stack, "sidecar")
    pid = stack.sidecar.pid
    readers = [await RawMcp(stack).open(f"trust-reader-{n}", "claude", ("read",)) for n in range(args.readers)]
    try:
        await readers[0].call("get_messages", session_id=session_id, limit=1)  # warm up the tool's path
        await asyncio.sleep(1)
        before = proc_status(pid)
        sampler = RssSampler(pid, ceiling_kib=args.rss_ceiling_mib * 1024)
        sampler.start()
        cpu = CpuShare({"client": "self", "sidecar": pid})
        cpu.start()
        lag = LoopLag()
        lag.start()
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(reader.call("get_messages", session_id=session_id, limit=1000) for reader in readers),
            return_exceptions=True)
        elapsed = time.perf_counter() - started
        lags = await lag.stop()
        shares = cpu.stop()
        during = proc_status(pid) or {}
        await asyncio.sleep(args.settle)
        after = proc_status(pid) or {}
        sampled = sampler.stop()
    finally:
        for reader in readers:
            await reader.close()
    calls = []
    for answer in answers:
        if isinstance(answer, BaseException):
            calls.append({"answer": type(answer).__name__})
            continue
        fields = answer["fields"]
        calls.append({"answer": answer_kind(answer), "seconds": round(answer["seconds"], 2),
                      "first_byte_s": round(answer["first_byte_s"] or 0, 2), "mib": round(answer["bytes"] / 2**20, 1),
                      "count": fields.get("count"), "has_more": fields.get("has_more")})
    return {"messages": args.big, "size": args.size, "readers": args.readers, "seconds": round(elapsed, 2),
            "rss_before_mib": mib(before["VmRSS"]), **sampled,
            "hwm_mib": mib(after.get("VmHWM") or during.get("VmHWM")),
            "rss_after_mib": mib(after.get("VmRSS")), "settle_s": args.settle, "calls": calls,
            "client_loop_lag_ms": lags, "cpu": shares}


# Part 3: Daphne memory with non-reading replay sockets


def silent_socket(port, path, origin, token, rcvbuf, timeout=30.0):
    """A WebSocket handshake on a raw socket with a small receive buffer; never read after it.

    Returns ``(socket or None, status, effective SO_RCVBUF)``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window stays small
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Origin: {origin}\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
        # Take exactly the response head, so what stays queued starts at the first frame.
        while True:
            peeked = sock.recv(8192, socket.MSG_PEEK)
            if not peeked:
                raise ConnectionError("closed during the handshake")
            end = peeked.find(b"\r\n\r\n")
            if end >= 0:
                head = sock.recv(end + 4)
                break
            if len(peeked) >= 8192:
                raise ConnectionError("handshake answer too long")
            time.sleep(0.005)
        status = int(head.split(b" ", 2)[1])
    except ConnectionResetError:
        sock.close()
        return None, RESET, None
    except (OSError, ValueError, IndexError) as exc:
        sock.close()
        return None, type(exc).__name__, None
    if status != 101:
        sock.close()
        return None, f"HTTP {status}", None
    return sock, status, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def socket_fate(sock):
    """What a never-read socket holds now: ``(state, bytes queued)``, without reading it."""
    try:
        queued = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        queued = 0
    sock.setblocking(False)
    try:
        first = sock.recv(4, socket.MSG_PEEK)
    except BlockingIOError:
        return "open, nothing queued", queued
    except ConnectionResetError:
        return "reset by the server", 0
    except OSError as exc:
        return type(exc).__name__, queued
    if not first:
        return "closed by the server", queued
    if first[0] & 0x0F == 0x8:  # a close frame came first: refused after the handshake
        code = int.from_bytes(first[2:4], "big") if len(first) >= 4 else None
        return f"closed before any message (code {code})", queued
    return "open, frames queued", queued


async def live_latency(writer, watcher, session_id, interval, label, count=None, until=None):
    """End-to-end latency of live messages to ``watcher``: ``count`` of them, or as many as fit ``until``."""
    samples, failures = [], collections.Counter()
    n = 0
    while (n < count) if count is not None else (n == 0 or time.perf_counter() < until):
        n += 1
        started = time.perf_counter()
        try:
            answer = await writer.call("add_message", session_id=session_id, content=f"live {label} {n}")
        except Exception as exc:  # noqa: BLE001 - counted
            failures[type(exc).__name__] += 1
            continue
        if not answer.get("success"):
            failures[answer.get("code") or "failed"] += 1
        else:
            await watcher.wait_for_all([answer["seq"]], 10)
            arrived = watcher.arrivals.get(answer["seq"])
            if arrived is None:
                failures["not delivered within 10 s"] += 1
            else:
                samples.append(arrived - started)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return summary_ms(samples), dict(failures)


async def replay_part(stack, args, session_id):
    restart(stack, "daphne")
    if stack.sidecar.poll() is not None:  # killed past the RSS ceiling in the read part
        stack.start_sidecar()
    pid = stack.daphne.pid
    writer = await stack.agent("trust-writer", "claude", permissions=("read", "write"))
    watcher_agent = await stack.agent("trust-watcher", "claude", permissions=("read",))
    if args.distinct_viewers:
        tokens = []
        for n in range(args.sockets):
            granted = await writer.raw("authenticate_agent", agent_id=f"trust-viewer-{n}", agent_type="claude",
                                       requested_permissions=["read"])
            tokens.append(granted["token"])
    else:
        viewer = await stack.agent("trust-viewer", "claude", permissions=("read",))
        tokens = [viewer.token] * args.sockets
        await viewer.close()
    last_seq = args.big
    path = f"/{stack.prefix}ws/{session_id}/?since=0"
    sockets, refusals = [], collections.Counter()
    try:
        async with TimedWatcher(stack, session_id, token=watcher_agent.token, since=last_seq) as watcher:
            await watcher.ready()
            live_before, failed_before = await live_latency(writer, watcher, session_id, 0.1, "before", count=20)
            await asyncio.sleep(1)
            before = proc_status(pid)
            sampler = RssSampler(pid, ceiling_kib=args.rss_ceiling_mib * 1024)
            sampler.start()
            cpu = CpuShare({"client": "self", "daphne": pid, "sidecar": stack.sidecar.pid})
            cpu.start()
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            rcvbufs, pending, resets = set(), tokens, 0
            with ThreadPoolExecutor(max_workers=CONNECT_CONCURRENCY) as pool:
                for attempt in range(1 + args.retries):
                    opened = await asyncio.gather(*(
                        loop.run_in_executor(pool, silent_socket, stack.ws_port, path, stack.origin, token,
                                             args.rcvbuf)
                        for token in pending))
                    retry = []
                    for token, (sock, status, rcvbuf) in zip(pending, opened, strict=True):
                        if sock is not None:
                            sockets.append(sock)
                            rcvbufs.add(rcvbuf)
                        elif status == RESET and attempt < args.retries:
                            retry.append(token)  # as a determined client would
                            resets += 1
                        else:
                            refusals[str(status)] += 1
                    if not retry:
                        break
                    pending = retry
            connect_seconds = time.perf_counter() - started
            connected = time.perf_counter()
            live_during, failed_during = await live_latency(writer, watcher, session_id, 0.25, "during",
                                                            until=connected + args.hold)
            await asyncio.sleep(max(0.0, args.hold - (time.perf_counter() - connected)))
            held = time.perf_counter() - connected
            at_end = proc_status(pid) or {}
            shares = cpu.stop()
            sampled = sampler.stop()
            fates = collections.Counter()
            queued = 0
            for sock in sockets:
                state, waiting = socket_fate(sock)
                fates[state] += 1
                queued += waiting
    finally:
        for sock in sockets:
            sock.close()
        for agent in (writer, watcher_agent):
            with contextlib.suppress(Exception):  # a client whose connection broke may fail to close
                await agent.close()
    return {"messages": args.big, "size": args.size, "sockets": args.sockets,
            "viewers": args.sockets if args.distinct_viewers else 1, "accepted": len(sockets),
            "refused": dict(refusals), "resets_retried": resets, "connect_seconds": round(connect_seconds, 2),
            "client_rcvbuf": sorted(rcvbufs), "client_bytes_queued": queued, "held_seconds": round(held, 1),
            "rss_before_mib": mib(before["VmRSS"]), **sampled, "rss_at_end_mib": mib(at_end.get("VmRSS")),
            "hwm_mib": mib(at_end.get("VmHWM")), "socket_states_at_end": dict(fates),
            "live_before_ms": live_before, "live_during_ms": live_during,
            "live_failures": {**failed_before, **failed_during}, "cpu": shares}


# Report


def latency_row(label, s):
    return [label, s["n"], s["p50"], s["p95"], s["p99"], s["max"]]


def report_search(r):
    normal, during = r["normal"], r["during_search"]
    searches = during["searches"]
    lines = [
        f"1. Search: {r['messages']} messages of {r['size']:,} characters; search_context(query of "
        f"{r['query_chars']} characters, fuzzy_threshold=0) repeated for {during['seconds']} s",
        table(["latency (ms)", "n", "p50", "p95", "p99", "max"], [
            latency_row("probe add+get(10), normal", normal["probe_ms"]),
            latency_row("probe add+get(10), during search", during["probe_ms"]),
            latency_row("sidecar /health, normal", normal["health_ms"]),
            latency_row("sidecar /health, during search", during["health_ms"]),
            latency_row("client loop lag, normal", normal["client_loop_lag_ms"]),
            latency_row("client loop lag, during search", during["client_loop_lag_ms"]),
        ]),
        f"probe p99 during/normal: {r['p99_ratio']}x (goal <= {GOAL_P99_RATIO}x: "
        f"{'met' if r['p99_ratio'] is not None and r['p99_ratio'] <= GOAL_P99_RATIO else 'MISSED'}); "
        f"/health p99 during/normal: {r['health_p99_ratio']}x",
        f"probe refusals: normal {normal['probe_refusals'] or 0}, during {during['probe_refusals'] or 0}; "
        f"/health errors: {normal['health_errors']} / {during['health_errors']}",
        f"CPU (share of one core): normal {normal['cpu']}; during {during['cpu']}",
        f"searches: {len(searches)}, answers {dict(collections.Counter(s['answer'] for s in searches))}",
    ]
    shown = searches if len(searches) <= 20 else searches[:10] + searches[-5:]
    lines += [f"  search {n + 1}: {s['seconds']} s, {s['answer']}, scanned {s['scanned']}, "
              f"{s['bytes'] / 2**20:.1f} MiB" for n, s in enumerate(shown)]
    return "\n".join(lines)


def report_read(r):
    killed = f" (KILLED at {r['killed_at_rss_mib']} MiB: past --rss-ceiling-mib)" if r["killed_at_rss_mib"] else ""
    lines = [
        f"2. Read: {r['readers']} read-only agents at once, get_messages(limit=1000) over {r['messages']} messages "
        f"of {r['size']:,} characters (fresh sidecar), {r['seconds']} s",
        f"sidecar RSS: before {r['rss_before_mib']} MiB, peak {r['peak_rss_mib']} MiB (VmHWM {r['hwm_mib']} MiB)"
        f"{killed}, {r['settle_s']:.0f} s after {r['rss_after_mib']} MiB; "
        f"{r['samples']} samples, largest gap {r['max_sample_gap_ms']} ms",
        table(["call", "answer", "seconds", "first byte (s)", "MiB", "count", "has_more"], [
            [n + 1, c["answer"], c.get("seconds"), c.get("first_byte_s"), c.get("mib"), c.get("count"),
             c.get("has_more")] for n, c in enumerate(r["calls"])]),
        f"client loop lag p99 {r['client_loop_lag_ms']['p99']} ms, max {r['client_loop_lag_ms']['max']} ms; "
        f"CPU (share of one core): {r['cpu']}",
    ]
    return "\n".join(lines)


def report_replay(r):
    killed = f" (KILLED at {r['killed_at_rss_mib']} MiB: past --rss-ceiling-mib)" if r["killed_at_rss_mib"] else ""
    lines = [
        f"3. Replay: {r['sockets']} WebSockets ?since=0 by {r['viewers']} read-only viewer(s), never read, over "
        f"{r['messages']} messages of {r['size']:,} characters (fresh Daphne)",
        f"accepted {r['accepted']}, refused in the end {r['refused'] or 0} ({r['resets_retried']} handshakes reset "
        f"and retried); connected in {r['connect_seconds']} s; "
        f"client SO_RCVBUF {r['client_rcvbuf']}, bytes queued unread at the client at the end "
        f"{r['client_bytes_queued']:,}",
        f"Daphne RSS: before {r['rss_before_mib']} MiB, peak {r['peak_rss_mib']} MiB (VmHWM {r['hwm_mib']} MiB)"
        f"{killed}, after {r['held_seconds']} s {r['rss_at_end_mib']} MiB; "
        f"{r['samples']} samples, largest gap {r['max_sample_gap_ms']} ms",
        f"sockets at the end: {r['socket_states_at_end']}",
        table(["live message to a reading viewer (ms)", "n", "p50", "p95", "p99", "max"], [
            latency_row("before the sockets", r["live_before_ms"]),
            latency_row("while they are open", r["live_during_ms"]),
        ]),
        f"live failures: {r['live_failures'] or 0}; CPU (share of one core) while open: {r['cpu']}",
    ]
    return "\n".join(lines)


async def measure(stack, args, sessions):
    results = {}
    if "search" in args.parts:
        results["search"] = await search_part(stack, args, sessions["search"])
        if not args.json:
            print(report_search(results["search"]) + "\n", flush=True)
    if "read" in args.parts:
        results["read"] = await read_part(stack, args, sessions["big"])
        if not args.json:
            print(report_read(results["read"]) + "\n", flush=True)
    if "replay" in args.parts:
        results["replay"] = await replay_part(stack, args, sessions["big"])
        if not args.json:
            print(report_replay(results["replay"]), flush=True)
    return results


def main(argv=None):
    args = parse(argv or [])
    limit = raise_open_files_limit(max(4096, 4 * args.sockets + 512))
    env = dict(item.split("=", 1) for item in args.env)
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        folder = (tempfile.mkdtemp(prefix="scs-trust-") if args.keep
                  else cleanup.enter_context(tempfile.TemporaryDirectory(prefix="scs-trust-")))
        stack = Stack(folder, **env)
        cleanup.callback(stack.stop)
        stack.manage("migrate", "-v0")
        wanted = [("search", args.messages if "search" in args.parts else 0),
                  ("big", args.big if {"read", "replay"} & set(args.parts) else 0)]
        sessions, seeded_in = seed(stack, wanted, args.size)
        stack.start()
        if not args.json:
            total = sum(count for _, count in wanted)
            print(f"trust: seeded {total:,} messages of {args.size:,} characters in {seeded_in:.1f} s; "
                  f"Daphne pid {stack.daphne.pid}, sidecar pid {stack.sidecar.pid}; open files limit {limit}; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n", flush=True)
        results = asyncio.run(measure(stack, args, sessions))
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"\n(whole run {results['seconds']} s; load average now {os.getloadavg()[0]:.1f})")
        if args.keep:
            print(f"data folder kept: {folder}")
    return 0
