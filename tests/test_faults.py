"""Faults with real processes: killed Daphne, killed sidecar, slow viewers, a crashing ``serve`` child.

``SCS_FAULT_MESSAGES`` (default 1,000) sets how many messages the Daphne-kill
test streams from its 4 agents.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.helpers import eventually, new_session
from tests.stack import ROOT, Stack, free_port

STREAM_MESSAGES = int(os.environ.get("SCS_FAULT_MESSAGES", "1000"))
AGENTS = 4


@pytest.fixture(scope="module")
def faults_stack(tmp_path_factory):
    """One stack for the module's process faults; a viewer that stops reading is dropped past 1 MiB unsent."""
    running = Stack(tmp_path_factory.mktemp("faults"), SCS_WS_MAX_BUFFER=1024 * 1024).start()
    yield running
    running.stop()


@pytest.fixture
def stack(faults_stack):
    """The module's stack with both processes running, whatever an earlier test killed."""
    faults_stack.resume_daphne()
    if faults_stack.daphne.poll() is not None:
        faults_stack.start_daphne()
    if faults_stack.sidecar.poll() is not None:
        faults_stack.start_sidecar()
    return faults_stack


# Daphne killed mid-stream


async def test_daphne_killed_mid_stream_viewers_resume_with_everything(stack):
    agents = [await stack.agent(f"writer-{n}") for n in range(AGENTS)]
    try:
        session_id = await new_session(agents[0])
        first = [stack.watcher(session_id, token=agents[n].token) for n in range(3)]
        for watcher in first:
            await watcher.connect()
            await watcher.wait_caught_up()
        stored = []

        async def write(agent, count):
            for n in range(count):
                result = await agent.call("add_message", session_id=session_id, content=f"{agent.agent_id} #{n}")
                assert result["success"], result
                stored.append(result["seq"])

        per_agent = STREAM_MESSAGES // AGENTS
        total = per_agent * AGENTS
        writers = asyncio.gather(*(write(agent, per_agent) for agent in agents))
        try:
            await eventually(lambda: len(stored) >= total // 3, what="a third of the stream")
            await asyncio.to_thread(stack.kill_daphne)
            for watcher in first:
                await watcher.wait_closed()
            await eventually(lambda: len(stored) >= total // 2, what="half of the stream")
            await asyncio.to_thread(stack.start_daphne)
            resumed = [stack.watcher(session_id, token=agents[n].token, since=watcher.seqs[-1] if watcher.seqs else 0)
                       for n, watcher in enumerate(first)]
            for watcher in resumed:
                await watcher.connect()
        finally:
            await writers
        assert sorted(stored) == list(range(1, total + 1))
        for before, after in zip(first, resumed, strict=True):
            await after.wait_for_seq(total, timeout=30)
            await after.close()
            assert before.seqs + after.seqs == list(range(1, total + 1))
            assert before.seqs, "the watcher saw part of the stream before the kill"
    finally:
        for agent in agents:
            await agent.close()


# The sidecar killed during concurrent writes


async def test_sidecar_killed_during_writes_loses_no_confirmed_message(stack):
    agents = [await stack.agent(f"writer-{n}") for n in range(AGENTS)]
    session_id = await new_session(agents[0])
    live = stack.watcher(session_id, token=agents[0].token)
    await live.connect()
    await live.wait_caught_up()
    confirmed = {}  # seq -> content, for every add_message that returned success
    unanswered = []

    async def write(agent):
        for n in range(500):
            content = f"{agent.agent_id} #{n}"
            try:
                result = await asyncio.wait_for(
                    agent.call("add_message", session_id=session_id, content=content), 10)
            except Exception:  # the sidecar died under this call: it may or may not have stored it
                unanswered.append(content)
                return
            assert result["success"], result
            assert result["seq"] not in confirmed
            confirmed[result["seq"]] = content

    writers = asyncio.gather(*(write(agent) for agent in agents))
    await eventually(lambda: len(confirmed) >= 80, what="80 confirmed writes")
    await asyncio.to_thread(stack.kill_sidecar)
    await asyncio.wait_for(writers, 30)
    assert unanswered, "the kill interrupted the writers"
    for agent in agents:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(agent.close(), 5)

    await asyncio.to_thread(stack.start_sidecar)
    async with await stack.agent("after-restart") as agent:
        after = await agent.call("add_message", session_id=session_id, content="after restart")
        assert after["success"], after
    last = after["seq"]

    db = sqlite3.connect(stack.data_dir / "db.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT seq, content FROM realtime_message WHERE session_id = ? ORDER BY seq",
                          (session_id,)).fetchall()
        (last_seq,) = db.execute("SELECT last_seq FROM realtime_session WHERE id = ?", (session_id,)).fetchone()
    finally:
        db.close()
    stored = dict(rows)
    assert [seq for seq, _ in rows] == list(range(1, last + 1)), "a seq was duplicated or skipped"
    assert last_seq == last
    assert all(stored[seq] == content for seq, content in confirmed.items())
    # Messages stored just before the kill whose events died with the sidecar's queue reach the
    # viewer that stayed connected: the next event's seq shows the hole and it is filled.
    await live.wait_for_seq(last)
    assert live.seqs == list(range(1, last + 1))
    assert [m["data"]["content"] for m in live.messages] == [stored[seq] for seq in live.seqs]
    await live.close()
    async with await stack.agent("reader") as reader, stack.watcher(session_id, token=reader.token) as fresh:
        await fresh.wait_for_seq(last)
        assert fresh.seqs == list(range(1, last + 1))


# Slow viewers


async def slow_socket(stack, session_id, token):
    """A WebSocket client that reads nothing until told: a tiny receive buffer and a one-frame queue."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stack.ws_port))
    sock.setblocking(False)
    return await websockets.connect(stack.ws_url(session_id), sock=sock, origin=stack.origin, max_queue=1,
                                    additional_headers={"Authorization": f"Bearer {token}"})


async def test_a_viewer_that_does_not_read_is_dropped_and_holds_back_no_one(stack):
    base = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
    # 5.7 MB: more than the kernel's socket buffers and the server's 1 MiB bound can hold for it.
    count, padding = 60, "x" * 95_000
    async with await stack.agent("writer") as agent:
        session_id = await new_session(agent)
        slow = await slow_socket(stack, session_id, agent.token)
        async with stack.watcher(session_id, token=agent.token) as fast, \
                stack.watcher(session_id, token=agent.token) as other:
            await fast.wait_caught_up()
            await other.wait_caught_up()
            for n in range(1, count + 1):
                result = await agent.call("add_message", session_id=session_id, content=f"{n} {padding}")
                assert result["success"] and result["seq"] == n, result
            # Every message reached the reading viewers while the other one had read nothing at all.
            for reading in (fast, other):
                try:
                    await reading.wait_for_seq(count)
                except TimeoutError:
                    pytest.fail(f"a reading viewer stalled at {reading.seqs[-1:]} (closed={reading.closed})")
                assert reading.seqs == list(range(1, count + 1)) and reading.closed is None
        # The server dropped the viewer that did not read: its connection ends without a close
        # frame (1006) before it could read everything, and Daphne says why.
        await eventually(lambda: "unread (SCS_WS_MAX_BUFFER=1048576)" in stack.log("daphne"), 10,
                         "the drop in Daphne's log")
        received = []
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            async with asyncio.timeout(20):
                while True:
                    frame = json.loads(await slow.recv())
                    if frame["type"] == "new_message":
                        received.append(frame["seq"])
        assert closed.value.rcvd is None and slow.close_code == 1006
        assert received[-1:] != [count], "the slow viewer was kept and sent everything"
        # It loses nothing: it resumes from its last seq.
        async with stack.watcher(session_id, token=agent.token, since=received[-1] if received else 0) as again:
            await again.wait_for_seq(count)
            received += again.seqs
        assert received == list(range(1, count + 1))
    bridge = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
    assert bridge["dropped"] == base["dropped"] and bridge["rejected"] == base["rejected"]


# serve: supervision of the two processes


AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Serve:
    """``python manage.py serve`` as a real process on free ports, over a fresh data folder."""

    def __init__(self, data_dir: Path, *args):
        self.ws_port, self.mcp_port = free_port(), free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCS_", "DATABASE_URL", "CHANNEL_LAYER"))}
        env.update({"DJANGO_SETTINGS_MODULE": "project.settings", "SCS_DATA_DIR": str(data_dir),
                    "SCS_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
        # As from a terminal: Ctrl-C (SIGINT) at its default, even where this runner was started with it ignored
        # (a background job of a shell), which every child would inherit.
        self.argv = [sys.executable, "-c", AS_IN_A_TERMINAL, "manage.py", "serve", "--ws-port", str(self.ws_port),
                     "--mcp-port", str(self.mcp_port), *args]
        self.env = env
        self.process = None

    def start(self):
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self):
        return self.log.read_text(errors="replace")

    def children(self):
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in path.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            return {}
        found = {}
        for pid in pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                found["mcp_sidecar" if b"mcp_sidecar" in cmdline else "daphne"] = pid
        return found

    def wait(self, condition, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached in {timeout}s; output:\n{self.output()}")
            time.sleep(0.05)

    def healthy(self):
        for port in (self.ws_port, self.mcp_port):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def serve(tmp_path):
    started = []

    def make(*args):
        started.append(Serve(tmp_path / f"serve{len(started)}", *args).start())
        return started[-1]

    yield make
    for running in started:
        running.stop()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_serve_restarts_a_crashed_child_then_gives_up(serve):
    running = serve("--max-restarts", "2", "--restart-delay", "0.1")
    running.wait(lambda: "Shared Context Server is running at" in running.output(), what="the banner")
    assert running.healthy()
    daphne = running.children()["daphne"]
    for crash, delay in ((1, "0.1"), (2, "0.2")):
        sidecar = running.children()["mcp_sidecar"]
        os.kill(sidecar, signal.SIGKILL)
        running.wait(lambda: running.children().get("mcp_sidecar") not in (None, sidecar),  # noqa: B023
                     what=f"restart #{crash}")
        assert f"mcp_sidecar exited with code -9; restarting in {delay}s" in running.output()
        if crash == 1:
            running.wait(running.healthy, what="the restarted sidecar healthy")
    assert running.children()["daphne"] == daphne  # the other process was left alone
    os.kill(running.children()["mcp_sidecar"], signal.SIGKILL)
    running.process.wait(30)
    output = running.output()
    assert running.process.returncode != 0
    assert "mcp_sidecar crashed 3 times in 60s" in output and "giving up" in output
    running.wait(lambda: not pid_alive(daphne), 10, "daphne stopped")


def test_serve_stops_both_processes_on_ctrl_c(serve):
    running = serve()
    running.wait(lambda: "Press Ctrl-C to stop." in running.output(), what="the banner")
    children = running.children()
    assert set(children) == {"daphne", "mcp_sidecar"}
    os.killpg(running.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    # A bound that only a hang passes (each child gets 5 s before it is killed); it takes ~1 s.
    assert running.process.wait(60) == 0
    assert "Stopped." in running.output()
    assert "Traceback" not in running.output()
    for pid in children.values():
        running.wait(lambda: not pid_alive(pid), 10, "children stopped")  # noqa: B023


def test_serve_with_a_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = Serve(tmp_path)
        command.argv[command.argv.index("--ws-port") + 1] = str(port)
        result = subprocess.run(command.argv, cwd=ROOT, env=command.env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "already in use" in lines[0]
