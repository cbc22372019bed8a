"""Past one process: several Daphne and sidecar processes on Redis + Postgres.

The stack tests run whenever Redis and Postgres answer (``tests.scale.services``) and are
skipped, saying so, otherwise.
"""

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from realtime.management.commands.serve import broadcast_env
from tests.helpers import new_session
from tests.stack import ROOT


async def test_viewers_on_both_daphne_processes_get_every_message_once_in_order(scaled_stack):
    other = scaled_stack.via(ws_port=scaled_stack.broadcast_port)
    async with await scaled_stack.agent("fan-writer") as agent:
        session_id = await new_session(agent)
        async with scaled_stack.watcher(session_id, token=agent.token) as here, other.watcher(
            session_id, token=agent.token
        ) as there:
            await here.wait_caught_up()
            await there.wait_caught_up()
            for n in range(1, 41):
                result = await agent.call("add_message", session_id=session_id, content=f"message {n}")
                assert result["success"] and result["seq"] == n, result
            for watcher in (here, there):
                await watcher.wait_for_seq(40)
                assert watcher.seqs == list(range(1, 41))
                assert [m["data"]["content"] for m in watcher.messages] == [f"message {n}" for n in range(1, 41)]


async def test_the_http_publisher_moves_on_to_the_next_daphne_when_the_first_is_down(scaled_stack):
    sidecar = scaled_stack.via(mcp_port=scaled_stack.failover_mcp_port)  # SCS_BROADCAST_URL=<dead>,<ws_port>
    async with await sidecar.agent("failover-writer") as agent:
        session_id = await new_session(agent)
        async with scaled_stack.watcher(session_id, token=agent.token) as watcher:
            await watcher.wait_caught_up()
            for n in range(1, 6):
                result = await agent.call("add_message", session_id=session_id, content=f"after failover {n}")
                assert result["success"], result
            await watcher.wait_for_seq(5)
            assert watcher.seqs == [1, 2, 3, 4, 5]
    bridge = sidecar.sidecar_health()["bridge"]
    assert bridge["via"] == "http" and bridge["target"] == scaled_stack.http_url
    assert bridge["failed_attempts"] >= 1 and bridge["dropped"] == 0 and bridge["rejected"] == 0


async def test_sidecar_processes_writing_at_once_number_seqs_without_gaps_or_duplicates(scaled_stack):
    ports = [scaled_stack.mcp_port, scaled_stack.failover_mcp_port]  # two sidecars, broadcasting to different Daphne
    agents = [await scaled_stack.via(mcp_port=port).agent(f"writer-{port}-{k}") for port in ports for k in range(3)]
    per_agent = 15
    total = per_agent * len(agents)
    try:
        session_id = await new_session(agents[0])
        other = scaled_stack.via(ws_port=scaled_stack.broadcast_port)
        async with scaled_stack.watcher(session_id, token=agents[0].token) as here, other.watcher(
            session_id, token=agents[0].token
        ) as there:
            await here.wait_caught_up()
            await there.wait_caught_up()

            async def write(agent):
                seqs = []
                for n in range(per_agent):
                    result = await agent.call("add_message", session_id=session_id, content=f"{agent.agent_id} {n}")
                    assert result["success"], result
                    seqs.append(result["seq"])
                return seqs

            returned = [seq for seqs in await asyncio.gather(*(write(agent) for agent in agents)) for seq in seqs]
            assert sorted(returned) == list(range(1, total + 1))
            for watcher in (here, there):
                await watcher.wait_for_seq(total)
                assert watcher.seqs == list(range(1, total + 1))
        stored = await agents[0].call("get_messages", session_id=session_id, limit=1000)
        assert [m["seq"] for m in stored["messages"]] == list(range(1, total + 1))
    finally:
        for agent in agents:
            await agent.close()
    strategies = set()
    for port in ports:
        bridge = scaled_stack.via(mcp_port=port).sidecar_health()["bridge"]
        assert bridge["dropped"] == 0 and bridge["rejected"] == 0, (port, bridge)
        strategies.add(bridge["via"])
    assert strategies == {"channel_layer", "http"}  # auto on Redis publishes on the layer; the other over HTTP


WRITER = textwrap.dedent("""
    import os, sys, time
    import django
    django.setup()
    from realtime import operations
    session_id, name, count, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    open(ready, "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    for n in range(count):
        operations.add_message(session_id, sender=name, sender_type="test", content=f"{name} {n}")
""")


def start_writers(stack, session_id, writers, per_writer, folder, go):
    return [
        subprocess.Popen([sys.executable, "-c", WRITER, session_id, f"w{k}", str(per_writer),
                          str(folder / f"ready{k}"), str(go)], cwd=ROOT, env=stack.env)
        for k in range(writers)
    ]


async def test_writer_processes_contending_for_one_session_get_consecutive_seqs(scaled_stack, tmp_path):
    """Four processes add messages to one session at the same moment, straight through the ORM."""
    async with await scaled_stack.agent("contention-reader") as reader:
        session_id = await new_session(reader)
        writers, per_writer = 4, 40
        go = tmp_path / "go"
        processes = start_writers(scaled_stack, session_id, writers, per_writer, tmp_path, go)
        try:
            deadline = time.monotonic() + 30
            while not all((tmp_path / f"ready{k}").exists() for k in range(writers)):
                assert time.monotonic() < deadline, "writer processes did not start"
                assert all(p.poll() is None for p in processes), "a writer process exited early"
                await asyncio.sleep(0.02)
            go.touch()
            for process in processes:
                assert await asyncio.to_thread(process.wait, 60) == 0
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        stored = await reader.call("get_messages", session_id=session_id, limit=1000)
        total = writers * per_writer
        assert [m["seq"] for m in stored["messages"]] == list(range(1, total + 1))
        for k in range(writers):  # each writer's own messages kept their order
            contents = [m["content"] for m in stored["messages"] if m["sender"] == f"w{k}"]
            assert contents == [f"w{k} {n}" for n in range(per_writer)]
        session = await reader.call("get_session", session_id=session_id)
        assert session["session"]["last_seq"] == total


def test_migrations_are_applied_on_postgres(scaled_stack):
    vendor = scaled_stack.manage("shell", "-c", "from django.db import connection; print(connection.vendor)")
    assert vendor.stdout.strip().splitlines()[-1] == "postgresql"
    check = scaled_stack.manage("migrate", "--check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_serve_refuses_several_workers_with_the_in_memory_layer():
    with pytest.raises(CommandError, match="CHANNEL_LAYER_URL=redis://"):
        call_command("serve", "--workers", "2", "--no-migrate")


def test_serve_gives_the_sidecar_every_worker_unless_a_broadcast_url_is_set(monkeypatch):
    monkeypatch.delenv("SCS_BROADCAST_URL", raising=False)
    assert broadcast_env("127.0.0.1", [9001, 9002]) == {
        "SCS_BROADCAST_URL": "http://127.0.0.1:9001,http://127.0.0.1:9002"
    }
    monkeypatch.setenv("SCS_BROADCAST_URL", "http://daphne.internal:8081")
    assert broadcast_env("127.0.0.1", [9001, 9002]) == {}
