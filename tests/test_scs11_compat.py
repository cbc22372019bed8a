"""Coming from shared-context-server 1.1: its agents, resources, environment names and .env keep working."""

import json
import os
import subprocess
import sys

import pytest

from project import env as project_env
from tests.stack import PYTHON, ROOT

ASYNC = pytest.mark.asyncio(loop_scope="function")

FIXTURE = ROOT / "tests" / "fixtures" / "scs-1.1.10.sqlite3"


def run_legacy_agent(url, api_key):
    done = subprocess.run([PYTHON, "-m", "tests.scs11_agent", url], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "API_KEY": api_key})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@ASYNC
async def test_an_agent_written_for_1_1_passes_unchanged(stack):
    seen = run_legacy_agent(stack.mcp_url, stack.api_key)
    assert seen["server"] == "shared-context-server-django"
    assert seen["documented_tools"] >= 10
    # Read with the shared key and no token, a session shows public messages only (as 1.1 did), newest first.
    assert seen["session_messages"] == ["a reply", "a public finding"]


@pytest.fixture(scope="module")
def peer_executable():
    """The pinned shared-context-server 1.1.10, installed into .cache/peer-venv on first use (about a minute)."""
    from bench.peer_bench import PEER_VENV, ensure_peer

    try:
        return ensure_peer(PEER_VENV)
    except RuntimeError as exc:  # e.g. no route to PyPI: say so rather than pass
        pytest.skip(f"shared-context-server 1.1.10 could not be installed into .cache/peer-venv: {exc}")


@ASYNC
async def test_the_same_agent_passes_against_the_real_1_1_10(tmp_path, peer_executable):
    from bench.peer_bench import Peer

    peer = Peer(peer_executable, tmp_path).start()
    try:
        seen = run_legacy_agent(f"http://127.0.0.1:{peer.mcp_port}/mcp/", peer.api_key)
    finally:
        peer.stop()
    assert seen["server"] == "shared-context-server"
    assert set(seen["session_messages"]) == {"a reply", "a public finding"}


@ASYNC
async def test_resources_and_prompts_over_stdio_act_for_the_agent_of_its_key(stack):
    key = stack.issue_key("keyed", "claude")
    async with await stack.agent("keyed", "claude", permissions=("read", "write"), key=key) as agent:
        session_id = (await agent.call("create_session", purpose="stdio resources"))["session_id"]
        for content, visibility in (("for everyone", "public"), ("for me", "private")):
            await agent.call("add_message", session_id=session_id, content=content, visibility=visibility)

    async def read(client, uri):
        return json.loads((await client.read_resource(uri))[0].text)

    async with stack.stdio_client() as shared:  # the shared key: no agent named
        assert (await read(shared, "server://info"))["server_info"]["transports"] == ["streamable-http", "stdio"]
        docs = await read(shared, "docs://tools/add_message")
        assert list(docs["tools_documentation"]["tools"]) == ["add_message"]
        assert "parent_message_id" in docs["tools_documentation"]["tools"]["add_message"]["parameters"]
        public = await read(shared, f"session://{session_id}/messages/5")
        assert [m["content"] for m in public["messages"]] == ["for everyone"] and public["total_count"] == 1

    async with stack.stdio_client(SCS_AGENT_KEY=key) as own:
        mine = await read(own, f"session://{session_id}/messages/5")
        assert [m["content"] for m in mine["messages"]] == ["for me", "for everyone"]
        assert (await read(own, f"session://{session_id}"))["statistics"]["visible_messages"] == 2
        assert (await read(own, "agent://keyed/memory")) is not None
        prompt = await own.get_prompt("debug-session", {"session_id": session_id})
        assert "2 messages visible to you" in prompt.messages[0].content.text

    async with stack.mcp_client(key=key) as http:  # over HTTP, the agent key in X-API-Key names the reader too
        assert (await read(http, f"session://{session_id}"))["statistics"]["visible_messages"] == 2


def test_1_1_names_are_read_when_ours_are_unset_and_ours_win():
    environ = {"API_KEY": "legacy-key-long-enough", "HTTP_PORT": "24000", "SCS_MCP_PORT": "25000",
               "JWT_SECRET_KEY": "legacy-jwt-secret-long-enough", "SCS_JWT_SECRET": " "}
    project_env.load_environment(environ, cwd=ROOT / "tests")
    assert environ["SCS_API_KEY"] == "legacy-key-long-enough"
    assert environ["SCS_MCP_PORT"] == "25000"  # ours was set
    assert environ["SCS_JWT_SECRET"] == "legacy-jwt-secret-long-enough"  # ours was empty
    assert all(ours.startswith("SCS_") and not theirs.startswith("SCS_")
               for ours, theirs in project_env.LEGACY_NAMES.items())


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("API_KEY=from-dotenv-long-enough\nSCS_WS_PORT=9000\nLOG_LEVEL=DEBUG\n")
    environ = {"SCS_WS_PORT": "8500"}
    project_env.load_environment(environ, cwd=tmp_path)
    assert environ["SCS_API_KEY"] == "from-dotenv-long-enough"
    assert environ["SCS_WS_PORT"] == "8500"
    assert environ["SCS_LOG_LEVEL"] == "DEBUG"


def test_the_settings_follow_1_1_names_and_refuse_a_1_1_database(tmp_path, monkeypatch):
    script = ("import json, project.settings as s\n"
              "print(json.dumps([s.SCS_API_KEY, s.SCS_MCP_PORT, s.SCS_WS_PORT, str(s.DATABASES['default']['NAME'])]))")
    base = {"PATH": os.environ.get("PATH", ""), "SCS_DATA_DIR": str(tmp_path / "data")}
    legacy = {"API_KEY": "a-legacy-api-key-of-1.1", "HTTP_PORT": "23999", "WEBSOCKET_PORT": "34999",
              "DATABASE_PATH": str(tmp_path / "new.db")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**base, **legacy, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["a-legacy-api-key-of-1.1", 23999, 34999, str(tmp_path / "new.db")]

    refused = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             env={**base, "PYTHONPATH": str(ROOT), "DATABASE_PATH": str(FIXTURE)})
    assert refused.returncode != 0
    assert "is a shared-context-server 1.1 database: import it with `import_scs" in refused.stderr


def test_database_urls_of_1_1_lose_their_driver(monkeypatch):
    for given, wanted in (("sqlite+aiosqlite:///./chat_history.db", "sqlite:///./chat_history.db"),
                          ("postgresql+asyncpg://u@h/db", "postgresql://u@h/db"), ("", "")):
        monkeypatch.setenv("DATABASE_URL", given)
        assert project_env.database_url() == wanted


@pytest.mark.django_db
def test_total_count_is_what_the_filters_let_the_caller_see_on_every_page():
    from realtime import operations
    from realtime.visibility import Viewer

    session = operations.create_session("counting", created_by="alice")
    say = operations.add_message
    root = say(session.id, sender="alice", sender_type="claude", content="root")
    say(session.id, sender="alice", sender_type="claude", content="mine", visibility="private")
    reply = say(session.id, sender="bob", sender_type="claude", content="reply", parent_message_id=root.id)
    say(session.id, sender="gina", sender_type="gemini", content="theirs", visibility="agent_only")
    say(session.id, sender="gina", sender_type="gemini", content="deeper", parent_message_id=reply.id)
    alice = Viewer.for_agent("alice", "claude", ["read"])
    for filters, expected in (({}, 4), ({"visibility_filter": "private"}, 1), ({"since_seq": 2}, 2),
                              ({"thread_id": root.id}, 3), ({"since_seq": 2, "thread_id": root.id}, 2)):
        everything, _ = operations.list_messages(alice, session.id, limit=1000, **filters)
        assert operations.count_messages(alice, session.id, **filters) == len(everything) == expected, filters
