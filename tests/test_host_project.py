"""The app inside another Django project (tests/hostproject): its users, its login, mounted under /agents/.

Real Daphne serves the host's ASGI app, a real sidecar runs with the host's
settings, and real MCP and WebSocket clients talk to them on the host's routes.
"""

import asyncio
import subprocess
import textwrap

import httpx
import pytest
import websockets

from realtime.live.closecodes import CLOSE_RECHECK
from tests.helpers import new_session, sign_in
from tests.stack import PYTHON, ROOT, Stack

MEMBER, PASSWORD = "ada@example.com", "correct horse battery"


def host_python(stack, code):
    """Run ``code`` in a new process with the host's settings, as a team's script or worker would."""
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    done = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=stack.env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    stack = Stack(
        tmp_path_factory.mktemp("host"),
        settings_module="tests.hostproject.settings",
        asgi_app="tests.hostproject.asgi:application",
        prefix="agents/",
    )
    try:
        stack.start()
        host_python(stack, f"""
            from django.contrib.auth import get_user_model
            get_user_model().objects.create_user({MEMBER!r}, {PASSWORD!r}, team="data")
        """)
        yield stack
    finally:
        stack.stop()


def test_the_hosts_login_protects_the_pages(host):
    for path in ("/agents/", "/agents/sessions/session_0123456789abcdef/"):
        answer = httpx.get(host.http_url + path, timeout=10)
        assert answer.status_code == 302
        assert answer.headers["location"] == f"/members/sign-in/?next={path}"


async def test_agent_message_reaches_a_watcher_on_the_hosts_route(host):
    assert host.sidecar_health()["bridge"]["target"] == f"{host.http_url}/agents"
    async with await host.agent("host-writer") as agent:
        session_id = await new_session(agent)
        async with host.watcher(session_id, token=agent.token) as watcher:
            assert watcher.url.startswith(f"ws://127.0.0.1:{host.ws_port}/agents/ws/{session_id}/")
            await watcher.wait_caught_up()
            result = await agent.call("add_message", session_id=session_id, content="from the agent")
            assert result["success"] and result["seq"] == 1, result
            await watcher.wait_for_seq(1)
            assert watcher.messages[0]["data"]["content"] == "from the agent"
        # The route lives under the host's prefix only.
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"ws://127.0.0.1:{host.ws_port}/ws/{session_id}/", origin=host.origin,
                                     additional_headers={"Authorization": f"Bearer {agent.token}"})


async def test_host_code_in_another_process_publishes_like_an_agent(host):
    async with await host.agent("host-writer-2") as agent:
        session_id = await new_session(agent)
        async with host.watcher(session_id, token=agent.token) as watcher:
            await watcher.wait_caught_up()
            await agent.call("add_message", session_id=session_id, content="agent first")
            seq = host_python(host, f"""
                from realtime import publish
                message = publish.add_message({session_id!r}, "nightly import done", sender="importer",
                                              sender_type="job", metadata={{"rows": 1204}})
                print(message.seq)
            """)
            assert seq == "2"
            await agent.call("add_message", session_id=session_id, content="agent again")
            await watcher.wait_for_seq(3)
            assert watcher.seqs == [1, 2, 3]
            published = watcher.messages[1]
            assert published["data"]["sender"] == "importer" and published["data"]["sender_type"] == "job"
            assert published["data"]["content"] == "nightly import done"
            assert published["data"]["metadata"] == {"rows": 1204}
        # Agents read it back through MCP like any other message.
        listed = await agent.call("get_messages", session_id=session_id)
        assert [m["content"] for m in listed["messages"]] == ["agent first", "nightly import done", "agent again"]


async def test_a_signed_in_member_watches_and_a_host_view_publishes(host):
    async with await host.agent("host-writer-3") as agent:
        session_id = await new_session(agent, purpose="member view")
    cookies = await asyncio.to_thread(sign_in, host.http_url, MEMBER, PASSWORD, path="/members/sign-in/")
    async with httpx.AsyncClient(base_url=host.http_url, cookies=cookies, timeout=10) as client:
        dashboard = await client.get("/agents/")
        assert dashboard.status_code == 200
        assert 'id="host-nav"' in dashboard.text and MEMBER in dashboard.text  # the host's base template
        assert f'href="/agents/sessions/{session_id}/"' in dashboard.text
        assert 'data-ws-path="/agents/ws/dashboard/"' in dashboard.text
        page = await client.get(f"/agents/sessions/{session_id}/")
        assert page.status_code == 200
        assert f'data-ws-path="/agents/ws/{session_id}/"' in page.text
        assert f'data-older-url="/agents/sessions/{session_id}/messages"' in page.text
        async with host.watcher(session_id, cookie=cookies["sessionid"]) as watcher:
            await watcher.wait_caught_up()
            assert watcher.frames[0]["viewer"] == {"kind": "user", "id": MEMBER, "agent_type": "", "is_admin": False}
            # The sign-in's token: the pages, which hold forms, set the cookie again for the host's domain.
            answer = await client.post(f"/announce/{session_id}/",
                                 data={"text": "deploy starts"}, headers={"X-CSRFToken": cookies["csrftoken"]})
            assert answer.status_code == 200 and answer.json() == {"success": True, "seq": 1}, answer.text
            await watcher.wait_for_seq(1)
            assert watcher.messages[0]["data"]["sender"] == MEMBER
            assert watcher.messages[0]["data"]["content"] == "deploy starts"


async def test_open_pages_follow_the_hosts_own_user_model(host):
    # The host's Member model signs in by e-mail and has no username field: the check reads the fields it has.
    async with await host.agent("host-writer-4") as agent:
        session_id = await new_session(agent, purpose="rights")
    cookie = host.signed_in("grace@example.com", staff=True)
    async with host.watcher(session_id, cookie=cookie) as watcher:
        await watcher.wait_caught_up()
        assert watcher.frames[0]["viewer"]["is_admin"] is True
        await asyncio.to_thread(host_python, host, """
            from django.contrib.auth import get_user_model
            get_user_model().objects.filter(email="grace@example.com").update(is_staff=False)
        """)
        await watcher.wait_closed(timeout=1.0)
        assert watcher.closed == CLOSE_RECHECK


async def test_the_hosts_origin_is_matched_exactly(host):
    async with await host.agent("host-writer-5") as agent:
        session_id = await new_session(agent, purpose="origins")
        with pytest.raises(websockets.InvalidStatus):
            await host.watcher(session_id, token=agent.token, origin=f"http://127.0.0.1:{host.ws_port + 1}").connect()
        async with host.watcher(session_id, token=agent.token) as watcher:
            await watcher.wait_caught_up()
