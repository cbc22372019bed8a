"""Read cursors, stored mentions, get_inbox, mark_read, list_sessions and get_messages' unread_only / mark_read.

In-process: a fastmcp ``Client`` on the FastMCP app (which checks every answer against the
tool's outputSchema), and the domain functions underneath.
"""

import asyncio
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from fastmcp import Client

from realtime import inbox, operations, read_cursors
from realtime.errors import OperationError
from realtime.models import Inbox, Mention, Session
from realtime.visibility import Viewer
from tests.helpers import agent_token

pytestmark = pytest.mark.django_db(transaction=True)

BOB = Viewer.for_agent("bob", "claude", ("read", "write"))


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    """No Daphne here; calls carry no HTTP request, so they are admitted as stdio is without SCS_AGENT_KEY."""
    from mcp_sidecar import auth
    from realtime import publisher

    monkeypatch.setattr(publisher.get_publisher(), "publish", lambda event: None)
    monkeypatch.setattr(auth, "_stdio", {"enabled": True, "key": ""})


def store(session_id, content, sender="alice", sender_type="claude", visibility="public", **kwargs):
    return operations.add_message(session_id, sender=sender, sender_type=sender_type, content=content,
                                  visibility=visibility, may_write_admin_only=True, **kwargs)


astore = sync_to_async(store, thread_sensitive=False)


def new_session(purpose="inbox", created_by="alice"):
    return operations.create_session(purpose, created_by).id


class Tools:
    """The MCP app through an in-memory client, calling as one agent."""

    def __init__(self, client, token):
        self.client, self.token = client, token

    async def __call__(self, tool, **arguments):
        result = await self.client.call_tool(tool, {**arguments, "auth_token": self.token}, raise_on_error=False)
        return result.structured_content


@pytest.fixture
async def bob():
    from mcp_sidecar import tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp

    async with Client(mcp) as client:
        yield Tools(client, agent_token("bob", "claude"))


def contents(answer):
    assert answer["success"] is True, answer
    return [m["content"] for m in answer["messages"]]


# Mentions, stored with the message


def test_mentions_are_stored_with_the_message_numbered_per_agent():
    first, second = new_session(), new_session()
    message = store(first, "@bob and @carol, see metadata too", metadata={"mentions": ["dave", "bob", 7]})
    store(second, "@bob again; @alice is the sender and not mentioned by herself")
    rows = sorted(Mention.objects.values_list("agent_id", "seq", "session_id", "message_id"))
    assert rows == [("bob", 1, first, message.id), ("bob", 2, second, message.id + 1),
                    ("carol", 1, first, message.id), ("dave", 1, first, message.id)]
    assert dict(Inbox.objects.values_list("agent_id", "last_seq")) == {"bob": 2, "carol": 1, "dave": 1}


def test_storing_mentions_costs_the_same_few_queries_for_one_agent_or_forty(django_assert_max_num_queries):
    session_id = new_session()
    store(session_id, "warm up")
    with django_assert_max_num_queries(6) as one:
        store(session_id, "@a0 hello")
    with django_assert_max_num_queries(len(one.captured_queries)):
        store(session_id, " ".join(f"@a{n}" for n in range(40)))
    assert Mention.objects.count() == 41


def test_a_rolled_back_message_leaves_no_mention():
    session_id = new_session()
    with pytest.raises(OperationError):
        store(session_id, "@bob in reply to nothing", parent_message_id=10**9)
    assert not Mention.objects.exists() and not Inbox.objects.exists()


def test_the_backfill_finds_the_mentions_of_older_messages():
    from importlib import import_module

    backfill = import_module("realtime.migrations.0005_read_cursors_and_mentions").backfill_mentions
    session_id = new_session()
    store(session_id, "no mention here")
    store(session_id, "@bob first")
    store(session_id, "plain", metadata={"mentions": ["bob", "carol"]})
    store(session_id, "mail me at bob@example.com")
    expected = sorted(Mention.objects.values_list("agent_id", "seq", "message_id"))
    Mention.objects.all().delete()
    Inbox.objects.all().delete()
    backfill(apps, None)
    assert sorted(Mention.objects.values_list("agent_id", "seq", "message_id")) == expected
    assert dict(Inbox.objects.values_list("agent_id", "last_seq")) == {"bob": 2, "carol": 1}


# get_inbox


async def test_a_mention_in_another_session_is_in_the_inbox(bob):
    await sync_to_async(new_session)()
    elsewhere = await sync_to_async(new_session)("elsewhere")
    message = await astore(elsewhere, "@bob can you review this?")
    answer = await bob("get_inbox")
    assert contents(answer) == ["@bob can you review this?"]
    (record,) = answer["messages"]
    assert (record["session_id"], record["seq"], record["id"]) == (elsewhere, 1, message.id)
    assert answer["cursor"] == 1 and answer["timed_out"] is False and answer["has_more"] is False


async def test_mentions_bob_may_not_see_never_come_and_the_cursor_passes_them(bob):
    session_id = await sync_to_async(new_session)()
    await astore(session_id, "@bob private to alice", visibility="private")
    await astore(session_id, "@bob among geminis", sender="gina", sender_type="gemini", visibility="agent_only")
    await astore(session_id, "@bob admins", sender="root", sender_type="admin", visibility="admin_only")
    await astore(session_id, "@bob my own note", sender="bob")
    answer = await bob("get_inbox")
    assert contents(answer) == [] and answer["timed_out"] is True
    assert answer["cursor"] == 3  # three mentions of bob were stored (not his own) and passed over
    await astore(session_id, "@bob among claudes", visibility="agent_only")
    assert contents(await bob("get_inbox", since=answer["cursor"])) == ["@bob among claudes"]


async def test_since_returns_only_what_came_after_the_cursor(bob):
    session_id = await sync_to_async(new_session)()
    await astore(session_id, "@bob one")
    await astore(session_id, "@bob two")
    first = await bob("get_inbox", limit=1)
    assert contents(first) == ["@bob one"] and first["has_more"] is True
    second = await bob("get_inbox", since=first["cursor"])
    assert contents(second) == ["@bob two"] and second["has_more"] is False
    await astore(session_id, "not for bob")
    await astore(session_id, "@bob three")
    assert contents(await bob("get_inbox", since=second["cursor"])) == ["@bob three"]
    past = await bob("get_inbox", since=second["cursor"] + 5)
    assert past["success"] is False and past["code"] == "INVALID_ARGUMENT" and past["hint"], past


async def test_without_since_the_inbox_holds_the_mentions_not_marked_read(bob):
    session_id = await sync_to_async(new_session)()
    await astore(session_id, "@bob old")
    await astore(session_id, "between")
    await astore(session_id, "@bob new")
    assert contents(await bob("get_inbox")) == ["@bob old", "@bob new"]
    assert (await bob("mark_read", session_id=session_id, seq=2))["read_seq"] == 2
    assert contents(await bob("get_inbox")) == ["@bob new"]
    await bob("mark_read", session_id=session_id, seq=3)
    answer = await bob("get_inbox")
    assert contents(answer) == [] and answer["cursor"] == 2  # the cursor to wait from: bob's newest mention


async def test_a_waiting_inbox_wakes_for_a_mention_it_may_see_only(bob):
    session_id = await sync_to_async(new_session)()
    waiting = asyncio.ensure_future(bob("get_inbox", wait=30))
    await asyncio.sleep(0.2)
    await astore(session_id, "@bob private to alice", visibility="private")
    await astore(session_id, "no mention")
    await asyncio.sleep(0.2)
    assert not waiting.done()  # woken by the hidden mention, it read nothing it may see and waits on
    await astore(session_id, "@bob here it is")
    answer = await waiting
    assert contents(answer) == ["@bob here it is"] and answer["timed_out"] is False and answer["cursor"] == 2


async def test_a_token_revoked_during_the_wait_gets_no_message(bob):
    from realtime import tokens
    from realtime.models import RevokedToken

    session_id = await sync_to_async(new_session)()
    waiting = asyncio.ensure_future(bob("get_inbox", wait=30))
    await asyncio.sleep(0.2)
    claims = tokens.verify(bob.token)
    await sync_to_async(RevokedToken.objects.create)(jti=claims.token_id, agent_id="bob", reason="revoked",
                                                     expires_at=datetime.fromtimestamp(claims.expires_at, UTC))
    await astore(session_id, "@bob a secret plan")
    answer = await waiting
    assert answer["success"] is False and answer["code"] == "TOKEN_REVOKED", answer


async def test_a_wait_with_no_mention_times_out(bob):
    answer = await bob("get_inbox", wait=0.2)
    assert answer["success"] and answer["messages"] == [] and answer["timed_out"] is True and answer["cursor"] == 0


@pytest.mark.parametrize(("arguments", "code"), [
    ({"wait": -1}, "INVALID_ARGUMENT"),
    ({"wait": 10**6}, "INVALID_ARGUMENT"),
    ({"limit": 0}, "INVALID_ARGUMENT"),
    ({"since": -1}, "INVALID_ARGUMENT"),
    ({"since": "latest"}, "INVALID_ARGUMENT"),
])
async def test_bad_inbox_arguments_are_refused(bob, arguments, code):
    answer = await bob("get_inbox", **arguments)
    assert answer["success"] is False and answer["code"] == code and answer["error"], answer


# Read cursors: mark_read and get_messages(unread_only, mark_read)


async def test_unread_only_after_mark_read_returns_exactly_the_rest(bob):
    session_id = await sync_to_async(new_session)()
    for n in range(1, 6):
        await astore(session_id, f"m{n}")
    assert contents(await bob("get_messages", session_id=session_id, limit=2, mark_read=True)) == ["m1", "m2"]
    assert contents(await bob("get_messages", session_id=session_id, unread_only=True)) == ["m3", "m4", "m5"]
    # With since_seq, the later of the two counts.
    assert contents(await bob("get_messages", session_id=session_id, unread_only=True, since_seq=3)) == ["m4", "m5"]
    assert contents(await bob("get_messages", session_id=session_id, unread_only=True, since_seq=1)) == [
        "m3", "m4", "m5"]
    assert contents(await bob("get_messages", session_id=session_id, unread_only=True, mark_read=True)) == [
        "m3", "m4", "m5"]
    assert contents(await bob("get_messages", session_id=session_id, unread_only=True)) == []
    assert await sync_to_async(read_cursors.read_seq)("bob", session_id) == 5
    assert await sync_to_async(read_cursors.read_seq)("alice", session_id) == 0  # cursors are per agent


@pytest.mark.parametrize("narrowed", [{"thread_id": 1}, {"visibility_filter": "public"}, {"offset": 1}])
async def test_get_messages_does_not_mark_read_a_page_that_leaves_messages_out(bob, narrowed):
    session_id = await sync_to_async(new_session)()
    for n in range(3):
        await astore(session_id, f"m{n}")
    refused = await bob("get_messages", session_id=session_id, mark_read=True, **narrowed)
    assert refused["success"] is False and refused["code"] == "INVALID_ARGUMENT" and "since_seq" in refused["hint"]
    assert await sync_to_async(read_cursors.read_seq)("bob", session_id) == 0


async def test_mark_read_moves_forward_only_and_never_past_the_end(bob):
    session_id = await sync_to_async(new_session)()
    for n in range(3):
        await astore(session_id, f"m{n}")
    assert (await bob("mark_read", session_id=session_id, seq=2)) == {
        "success": True, "session_id": session_id, "read_seq": 2}
    assert (await bob("mark_read", session_id=session_id, seq=1))["read_seq"] == 2
    assert (await bob("mark_read", session_id=session_id, seq=0))["read_seq"] == 2
    past = await bob("mark_read", session_id=session_id, seq=4)
    assert past["success"] is False and past["code"] == "INVALID_ARGUMENT" and "3" in past["hint"], past
    assert (await bob("mark_read", session_id=session_id, seq=3))["read_seq"] == 3


@pytest.mark.parametrize(("arguments", "code"), [
    ({"session_id": "session_0000000000000000", "seq": 1}, "SESSION_NOT_FOUND"),
    ({"session_id": "not-a-session", "seq": 1}, "INVALID_SESSION_ID"),
    ({"seq": -1}, "INVALID_ARGUMENT"),
    ({"seq": "two"}, "INVALID_ARGUMENT"),
    ({}, "INVALID_ARGUMENT"),  # seq is required
])
async def test_bad_mark_read_arguments_are_refused(bob, arguments, code):
    session_id = await sync_to_async(new_session)()
    answer = await bob("mark_read", **{"session_id": session_id, **arguments})
    assert answer["success"] is False and answer["code"] == code and answer["error"], answer


async def test_unread_only_on_an_unknown_session_is_refused(bob):
    answer = await bob("get_messages", session_id="session_0000000000000000", unread_only=True)
    assert answer["code"] == "SESSION_NOT_FOUND", answer
    answer = await bob("get_messages", session_id="nope", unread_only=True)
    assert answer["code"] == "INVALID_SESSION_ID", answer


def test_concurrent_marks_leave_the_furthest():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    session_id = new_session()
    for n in range(8):
        store(session_id, f"m{n}")

    def mark(seq):
        try:
            return read_cursors.mark("bob", session_id, seq)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(mark, [3, 8, 1, 5, 2, 7, 4, 6] * 3))
    assert all(answer >= seq for answer, seq in zip(answers, [3, 8, 1, 5, 2, 7, 4, 6] * 3, strict=True))
    assert read_cursors.read_seq("bob", session_id) == 8


def test_mark_is_what_a_waiting_tool_calls():
    session_id = new_session()
    store(session_id, "one")
    assert asyncio.run(read_cursors.mark_async("bob", session_id, 1)) == 1
    with pytest.raises(OperationError) as raised:
        read_cursors.mark("bob", session_id, 2)
    assert raised.value.code == "INVALID_ARGUMENT"


# list_sessions


async def test_list_sessions_counts_unread_and_hides_closed_sessions(bob):
    quiet, busy, closed = [await sync_to_async(new_session)(name) for name in ("quiet", "busy", "closed")]
    await astore(busy, "one")
    await astore(busy, "mine", sender="bob")
    await astore(busy, "hidden", visibility="private")
    await astore(busy, "two")
    await astore(busy, "three", sender="gina", sender_type="gemini", visibility="agent_only")  # hidden from bob
    await astore(busy, "four", sender="carl", visibility="agent_only")
    await astore(closed, "old news")
    await sync_to_async(Session.objects.filter(pk=closed).update)(is_active=False)
    await bob("mark_read", session_id=busy, seq=1)

    answer = await bob("list_sessions")
    assert answer["success"] and answer["has_more"] is False
    listed = {s["id"]: s for s in answer["sessions"]}
    assert [s["id"] for s in answer["sessions"]] == [busy, quiet]  # most recent activity first; closed hidden
    assert (listed[busy]["unread"], listed[busy]["read_seq"], listed[busy]["last_seq"]) == (2, 1, 6)
    assert (listed[quiet]["unread"], listed[quiet]["last_seq"], listed[quiet]["is_active"]) == (0, 0, True)
    assert listed[busy]["purpose"] == "busy" and listed[busy]["created_by"] == "alice"

    everything = await bob("list_sessions", include_closed=True)
    assert [s["id"] for s in everything["sessions"]] == [closed, busy, quiet]
    assert {s["id"]: s["is_active"] for s in everything["sessions"]}[closed] is False
    assert {s["id"]: s["unread"] for s in everything["sessions"]}[closed] == 1
    page = await bob("list_sessions", limit=1, offset=1, include_closed=True)
    assert page["count"] == 1 and page["has_more"] is True


@pytest.mark.parametrize(("arguments", "code"), [
    ({"limit": 0}, "INVALID_ARGUMENT"), ({"offset": -1}, "INVALID_ARGUMENT"),
    ({"offset": 10**9}, "OFFSET_TOO_LARGE"), ({"include_closed": "perhaps"}, "INVALID_ARGUMENT"),
])
async def test_bad_list_sessions_arguments_are_refused(bob, arguments, code):
    answer = await bob("list_sessions", **arguments)
    assert answer["success"] is False and answer["code"] == code, answer


def test_list_sessions_takes_one_query_whatever_the_number_of_sessions(django_assert_max_num_queries):
    sessions = [new_session(f"s{n}") for n in range(30)]
    for n, session_id in enumerate(sessions):
        for m in range(n % 4):
            store(session_id, f"m{m}")
        if n % 3 == 0 and n % 4:
            read_cursors.mark("bob", session_id, 1)
    with django_assert_max_num_queries(1):
        listed, has_more = operations.list_sessions(BOB, limit=50)
    assert len(listed) == 30 and not has_more
    expected = {s: (n % 4) - (1 if n % 3 == 0 and n % 4 else 0) for n, s in enumerate(sessions)}
    assert {s.id: s.unread for s in listed} == expected


def test_the_inbox_reads_in_a_fixed_number_of_queries(django_assert_max_num_queries):
    sessions = [new_session(f"s{n}") for n in range(10)]
    for session_id in sessions:
        store(session_id, "@bob look")
        read_cursors.mark("bob", session_id, 0)
    with django_assert_max_num_queries(3):
        page = inbox.read(BOB, None, 50)
    assert len(page.records) == 10 and page.cursor == 10


# Guidance


async def test_the_guidance_and_the_prompt_teach_the_loop(bob):
    from mcp_sidecar.prompts import setup_collaboration

    loop = ("list_sessions", "wait_for_messages", "last_seq", "add_message", "mark_read", "get_inbox", "watch_session")
    guidance = await bob("get_usage_guidance")
    workflow = " ".join(guidance["guidance"]["workflow"])
    prompt = setup_collaboration("ship it")
    for word in loop:
        assert word in workflow and word in prompt, word
    assert {"get_inbox", "mark_read", "list_sessions"} <= set(guidance["available_tools"])
    assert guidance["guidance"]["limits"]["wait_max_seconds"] == 300
