"""permessage-deflate with a real Daphne: accepted with ``SCS_WS_DEFLATE``, declined by default, frames intact.

The viewers offer it as ``websockets`` does by default (``client_max_window_bits``);
``test_ws_deflate.py`` checks the parameters unit by unit.
"""

import secrets

import pytest

from realtime.live import ws_deflate
from tests.helpers import new_session, say
from tests.stack import Stack

# A short message, one much longer than the 4 KiB window that compresses well, and one that does not compress.
CONTENTS = ["short", "é" * 3000 + "a line of text\n" * 2000, secrets.token_urlsafe(30_000)]


@pytest.fixture(scope="module", params=[True, False], ids=["SCS_WS_DEFLATE=1", "default"])
def deflate_stack(request, tmp_path_factory):
    """``(deflate on?, Stack)``."""
    env = {"SCS_WS_DEFLATE": "1"} if request.param else {}
    running = Stack(tmp_path_factory.mktemp("deflate"), **env).start()
    yield request.param, running
    running.stop()


async def test_an_offer_is_accepted_only_when_on_and_every_frame_arrives_intact(deflate_stack):
    deflate, stack = deflate_stack
    async with await stack.agent("deflate-writer") as agent:
        session_id = await new_session(agent, "deflate")
        await say(agent, session_id, "before the viewer came")
        async with stack.watcher(session_id, token=agent.token, since=0) as viewer:
            await viewer.wait_caught_up()
            assert viewer.frames[0]["type"] == "hello" and viewer.seqs == [1]
            answered = viewer.socket.response.headers.get("Sec-WebSocket-Extensions")
            if deflate:
                assert answered == f"permessage-deflate; client_max_window_bits={ws_deflate.WINDOW_BITS}"
                assert len(viewer.socket.protocol.extensions) == 1
            else:
                assert answered is None and viewer.socket.protocol.extensions == []
            for content in CONTENTS:
                await say(agent, session_id, content)
            await viewer.wait_for_seq(1 + len(CONTENTS))
            assert [m["data"]["content"] for m in viewer.messages] == ["before the viewer came", *CONTENTS]
            await viewer.send({"type": "ping"})  # compressed by the client when deflate is on
            await viewer.wait(lambda w: w.frames[-1]["type"] == "pong")
