"""A person's post and staff's close, made on one Daphne, reach viewers of another (Redis + Postgres).

Runs whenever Redis and Postgres answer (``tests.scale.services``); skipped, saying so, otherwise.
"""

import re

import httpx

from tests.helpers import new_session


async def test_a_post_and_a_close_on_one_daphne_reach_the_viewers_of_the_other(scaled_stack):
    other = scaled_stack.via(ws_port=scaled_stack.broadcast_port)
    staff_cookie = scaled_stack.signed_in("scaled-boss", staff=True)
    member_cookie = scaled_stack.signed_in("scaled-member")
    async with await scaled_stack.agent("scaled-agent") as agent:
        session_id = await new_session(agent, "Across processes")
        async with other.watcher(session_id, cookie=member_cookie) as member, other.watcher(
            session_id, token=agent.token
        ) as agent_socket, httpx.AsyncClient(base_url=scaled_stack.http_url, timeout=10,
                                             cookies={"sessionid": staff_cookie}) as staff:
            await member.wait_caught_up()
            await agent_socket.wait_caught_up()
            page = await staff.get(f"/sessions/{session_id}/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            headers = {"Accept": "application/json", "X-CSRFToken": token}
            posted = await staff.post(f"/sessions/{session_id}/post", data={"content": "from a person"},
                                      headers=headers)
            assert posted.status_code == 201, posted.text
            for watcher in (member, agent_socket):
                await watcher.wait_for_seq(1)
                assert watcher.messages[0]["data"]["sender"] == "scaled-boss"
                assert watcher.messages[0]["data"]["sender_type"] == "human"
            closed = await staff.post(f"/sessions/{session_id}/close", headers=headers)
            assert closed.status_code == 200, closed.text
            for watcher in (member, agent_socket):
                await watcher.wait(lambda w: any(f["type"] == "session_state" for f in w.frames))
                state = next(f for f in watcher.frames if f["type"] == "session_state")
                assert state["data"] == {"is_active": False, "purpose": "Across processes"}
            refused = await agent.call("add_message", session_id=session_id, content="too late")
            assert refused["code"] == "SESSION_CLOSED", refused
            assert member.seqs == [1] and agent_socket.seqs == [1]
