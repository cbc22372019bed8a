"""Nothing committed stays unannounced, with real processes: a killed sidecar, a dropped event.

Each test stores a message that no live send can deliver, then waits, with no
new message, for a sweeper (the restarted sidecar's, or Daphne's) to announce
it. ``SCS_TEST_SWEEPER_OFF=1`` runs them with the sweepers off
(``SCS_ANNOUNCE_SWEEP_INTERVAL=0``), where each must fail.
"""

import asyncio
import os
import sqlite3

from tests.stack import free_port

SWEEPERS = {"SCS_ANNOUNCE_SWEEP_INTERVAL": "0"} if os.environ.get("SCS_TEST_SWEEPER_OFF") == "1" else {}
WITHIN = 5.0  # seconds: grace (2 s) + one sweep interval (1 s) + the send, with room


def caught_up(watcher):
    return any(frame["type"] == "caught_up" for frame in watcher.frames)


def cursors(stack, session_id):
    """``(last_seq, announced_seq)`` of a session, read from the stack's SQLite file as an operator would."""
    with sqlite3.connect(stack.data_dir / "db.sqlite3") as db:
        return db.execute("SELECT last_seq, announced_seq FROM realtime_session WHERE id = ?", [session_id]).fetchone()


async def until(condition, within=WITHIN, what="condition"):
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, f"{what} not reached within {within}s"
        await asyncio.sleep(0.05)


async def new_session(agent, purpose="quiet"):
    result = await agent.call("create_session", purpose=purpose)
    assert result["success"], result
    return result["session_id"]


async def test_a_viewer_connected_all_along_gets_a_message_the_killed_sidecar_never_sent(fresh_stack):
    # The sidecar's broadcast URL leads nowhere: it stores and confirms, but cannot send.
    stack = fresh_stack(SCS_BROADCAST_URL=f"http://127.0.0.1:{free_port()}", **SWEEPERS)
    async with await stack.agent("quiet-writer") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as watcher:
            await watcher.wait(caught_up)
            result = await agent.call("add_message", session_id=session_id, content="my last word")
            assert result["success"] and result["seq"] == 1, result
            await asyncio.to_thread(stack.kill_sidecar)
            await watcher.wait_for_seq(1, timeout=WITHIN)
            assert watcher.seqs == [1] and watcher.messages[0]["data"]["content"] == "my last word"
    await until(lambda: cursors(stack, session_id) == (1, 1), what="the announced cursor")


async def test_after_daphne_was_down_and_the_sidecar_killed_the_restarted_sidecar_announces_it(fresh_stack):
    stack = fresh_stack(**SWEEPERS)
    staff = await asyncio.to_thread(stack.signed_in, "operator", staff=True)
    async with await stack.agent("quiet-writer") as agent:
        session_id = await new_session(agent)
        await asyncio.to_thread(stack.stop_daphne)
        result = await agent.call("add_message", session_id=session_id, content="stored while Daphne was down")
        assert result["success"] and result["seq"] == 1, result
    await asyncio.to_thread(stack.kill_sidecar)
    assert cursors(stack, session_id) == (1, 0)
    await asyncio.to_thread(stack.start_daphne)
    # A dashboard open before the announcement hears of the session only through it (no session socket,
    # so Daphne's own sweeper is not started: the restarted sidecar's must do it).
    async with stack.watcher("dashboard", cookie=staff) as dashboard:
        await dashboard.wait(lambda w: any(f["type"] == "hello" for f in w.frames))
        await asyncio.to_thread(stack.start_sidecar)
        await dashboard.wait(lambda w: any(f["type"] == "session_summary" and f["session_id"] == session_id
                                           for f in w.frames), timeout=WITHIN)
    await until(lambda: cursors(stack, session_id) == (1, 1), what="the announced cursor")
    async with await stack.agent("reader") as agent, stack.watcher(session_id, token=agent.token) as viewer:
        await viewer.wait_for_seq(1)
        assert viewer.seqs == [1]


async def test_an_event_dropped_by_a_full_queue_still_reaches_the_viewer(fresh_stack):
    stack = fresh_stack(SCS_PUBLISH_MAX_QUEUE=1, **SWEEPERS)
    async with await stack.agent("busy-writer") as agent:
        sessions = [await new_session(agent, f"session {n}") for n in range(3)]
        async with stack.watcher(sessions[1], token=agent.token) as watcher:
            await watcher.wait(caught_up)
            before = await asyncio.to_thread(stack.sidecar_health)
            await asyncio.to_thread(stack.pause_daphne)
            try:
                # The first event is in flight to the hung Daphne; the second waits in the queue of one,
                # and the third pushes it out.
                for n, session_id in enumerate(sessions):
                    result = await agent.call("add_message", session_id=session_id, content=f"event {n}")
                    assert result["success"], result
                    if n == 0:
                        await until(lambda: stack.sidecar_health()["bridge"]["inflight"] == 1, what="in flight")
                stats = (await asyncio.to_thread(stack.sidecar_health))["bridge"]
                assert stats["dropped"] == before["bridge"]["dropped"] + 1, stats
            finally:
                await asyncio.to_thread(stack.resume_daphne)
            await watcher.wait_for_seq(1, timeout=WITHIN)
            assert watcher.seqs == [1] and watcher.messages[0]["data"]["content"] == "event 1"


async def test_on_redis_and_postgres_every_daphne_sweeps_and_each_viewer_gets_the_message_once(scaled_fresh_stack):
    stack = scaled_fresh_stack(SCS_PUBLISH_VIA="http", SCS_BROADCAST_URL=f"http://127.0.0.1:{free_port()}",
                               **SWEEPERS)
    other = stack.via(ws_port=await asyncio.to_thread(stack.add_daphne))
    async with await stack.agent("quiet-writer") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as here, other.watcher(
            session_id, token=agent.token
        ) as there:
            await here.wait(caught_up)
            await there.wait(caught_up)
            result = await agent.call("add_message", session_id=session_id, content="my last word")
            assert result["success"] and result["seq"] == 1, result
            await asyncio.to_thread(stack.kill_sidecar)
            for watcher in (here, there):
                await watcher.wait_for_seq(1, timeout=WITHIN)
            # Both Daphne processes may announce it; each viewer still gets it once.
            assert here.seqs == [1] and there.seqs == [1]
