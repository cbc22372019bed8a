"""``realtime.live.delivery.deliver_many`` for one session: what reaches its group and the dashboard group."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from realtime import operations
from realtime.envelope import encode, message_event
from realtime.live import dashboard, delivery
from realtime.live.groups import session_group
from realtime.models import Message, Session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


@pytest.fixture(autouse=True)
def forget_known_sessions(monkeypatch):
    """Each test starts with empty caches (they are process-wide)."""
    monkeypatch.setattr(delivery, "_known", type(delivery._known)())
    monkeypatch.setattr(dashboard, "_tallies", type(dashboard._tallies)())


async def deliver(session_id, events):
    """One session's batch, as the door delivers it; False when there is no such session."""
    return not await delivery.deliver_many([(session_id, events)])


async def listener(group):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def next_message(channel, timeout=2):
    return await asyncio.wait_for(get_channel_layer().receive(channel), timeout)


async def nothing_arrives(channel):
    with pytest.raises(TimeoutError):
        await next_message(channel, timeout=0.2)
    return True


@pytest.fixture
async def stored():
    """A session with three messages of different senders and visibilities, and their envelopes."""
    session = await Session.objects.acreate(purpose="p" * 300, created_by="creator")

    def add(sender, sender_type, visibility):
        return operations.add_message(session.id, sender=sender, sender_type=sender_type, content=f"{sender} says",
                                      visibility=visibility, may_write_admin_only=True)

    messages = [await sync_to_async(add)(*fields) for fields in
                [("alice", "claude", "public"), ("bob", "gemini", "private"), ("root", "admin", "admin_only")]]
    return session, [message_event(m) for m in messages]


async def test_events_reach_the_session_group_in_seq_order_with_their_texts(stored):
    session, events = stored
    channel = await listener(session_group(session.id))
    assert await deliver(session.id, [events[2], events[0], events[1]]) is True
    message = await next_message(channel)
    assert message["type"] == "session.events"
    assert [event["seq"] for event in message["events"]] == [1, 2, 3]
    # Encoded once for every viewer: each text is the compact JSON of the event beside it.
    assert message["texts"] == [encode(event) for event in message["events"]]
    assert [json.loads(text) for text in message["texts"]] == events
    assert ", " not in message["texts"][0] and ": " not in message["texts"][0]


async def test_an_unknown_session_gets_nothing_delivered(stored):
    session, events = stored
    unknown = "session_00000000000000ff"
    viewers, board = await listener(session_group(unknown)), await listener(dashboard.DASHBOARD_GROUP)
    moved = [{**event, "session_id": unknown} for event in events]
    assert await deliver(unknown, moved) is False
    assert await nothing_arrives(viewers) and await nothing_arrives(board)
    assert unknown not in delivery._known  # a miss is not remembered as a session


async def test_the_dashboard_gets_a_summary_without_content(stored):
    session, events = stored
    board = await listener(dashboard.DASHBOARD_GROUP)
    await deliver(session.id, events[:2])
    summary = await next_message(board)
    assert summary["type"] == "dashboard.summary"
    assert summary["session"] == {"id": session.id, "purpose": "p" * dashboard.PURPOSE_CHARS, "created_by": "creator"}
    assert summary["senders"] == [["alice", "claude", "public"], ["bob", "gemini", "private"]]
    # The tally counts every stored message up to the newest delivered seq, read from the database.
    tally = {(visibility, sender): count for visibility, sender, _, count, _ in summary["tally"]}
    assert tally == {("public", "alice"): 1, ("private", "bob"): 1}
    assert "says" not in json.dumps(summary)

    await deliver(session.id, events[2:])  # follows on: counted on, the same figures
    tally = {(visibility, sender): count for visibility, sender, _, count, _ in (await next_message(board))["tally"]}
    assert tally == {("public", "alice"): 1, ("private", "bob"): 1, ("admin_only", "root"): 1}


async def test_a_batch_far_ahead_of_the_last_one_is_tallied_from_the_database(stored):
    session, events = stored
    board = await listener(dashboard.DASHBOARD_GROUP)
    await deliver(session.id, events[:1])
    await next_message(board)
    far = {**events[1], "seq": 2**62}  # a gap this long must not be walked seq by seq
    assert await deliver(session.id, [far]) is True
    tally = {sender: count for _, sender, _, count, _ in (await next_message(board))["tally"]}
    assert tally == {"alice": 1, "bob": 1, "root": 1}


async def test_a_session_is_looked_up_once_then_remembered(stored, monkeypatch):
    session, events = stored
    monkeypatch.setattr(delivery, "KNOWN_SESSIONS", 2)
    others = [await Session.objects.acreate(purpose=str(n), created_by="x") for n in range(2)]
    assert await delivery.session_info(session.id) == {"id": session.id, "purpose": "p" * 300,
                                                        "created_by": "creator"}
    await Session.objects.filter(pk=session.id).aupdate(purpose="changed")
    assert (await delivery.session_info(session.id))["purpose"] == "p" * 300  # no second query
    for other in others:  # two newer sessions push the oldest out
        await delivery.session_info(other.id)
    assert list(delivery._known) == [other.id for other in others]
    assert (await delivery.session_info(session.id))["purpose"] == "changed"


async def test_deliver_leaves_the_events_it_was_given_as_they_were(stored):
    session, events = stored
    given = [events[1], events[0]]
    await deliver(session.id, given)
    assert [event["seq"] for event in given] == [2, 1]
    assert await Message.objects.acount() == 3


async def test_pages_get_each_message_rendered_once_however_many_watch(stored, monkeypatch):
    """One render per event per delivery, not per viewer; agents get the envelope alone."""
    from realtime import fragments
    from tests.helpers import Viewer, agent_token, user_cookie

    session, events = stored
    monkeypatch.setattr(fragments, "_built", fragments.RenderedCache(0))  # keeps nothing: every render counts
    built = []
    build = fragments.build_message_html
    monkeypatch.setattr(fragments, "build_message_html", lambda event: built.append(event["seq"]) or build(event))
    pages = [Viewer(session.id, cookie=await user_cookie(f"reader{n}", staff=True), query="?since=3")
             for n in range(3)]
    agent = Viewer(session.id, bearer=agent_token("watcher", "admin", ["read", "admin"]), query="?since=3")
    for viewer in (*pages, agent):
        assert (await viewer.connect())[0]
        await viewer.ready()
    fresh = [{**event, "seq": event["seq"] + 3} for event in events]
    await deliver(session.id, fresh)
    for page in pages:
        frames = [await page.next() for _ in fresh]
        assert [frame["html"] for frame in frames] == [build(event) for event in fresh]
    assert [set(await agent.next()) for _ in fresh] == [{"type", "session_id", "seq", "data"}] * 3
    assert sorted(built) == [4, 5, 6]
    for viewer in (*pages, agent):
        await viewer.close()


async def test_a_session_only_agents_watch_here_is_not_rendered_and_a_page_gets_html_again(stored, monkeypatch):
    from realtime import fragments
    from tests.helpers import Viewer, agent_token, user_cookie

    session, events = stored
    monkeypatch.setattr(fragments, "_built", fragments.RenderedCache(0))
    built = []
    build = fragments.build_message_html
    monkeypatch.setattr(fragments, "build_message_html", lambda event: built.append(event["seq"]) or build(event))
    channel = await listener(session_group(session.id))
    agent = Viewer(session.id, bearer=agent_token("watcher", "admin", ["read", "admin"]), query="?since=3")
    assert (await agent.connect())[0]
    await agent.ready()
    await deliver(session.id, [{**events[0], "seq": 4}])
    assert (await next_message(channel))["page_texts"] is None and built == []
    assert set(await agent.next()) == {"type", "session_id", "seq", "data"}

    page = Viewer(session.id, cookie=await user_cookie("reader", staff=True), query="?since=4")
    assert (await page.connect())[0]
    await page.ready()
    fresh = {**events[1], "seq": 5}
    await deliver(session.id, [fresh])
    delivered = await next_message(channel)
    assert built == [5]
    assert json.loads(delivered["page_texts"][0])["html"] == build(fresh)
    assert (await page.next())["html"] == build(fresh)
    await page.close()
    for _ in range(100):  # the page's disconnect runs (the count is the process's: other tests' sessions may be in it)
        if session.id not in delivery._pages:
            break
        await asyncio.sleep(0.02)
    assert session.id not in delivery._pages
    await deliver(session.id, [{**events[2], "seq": 6}])
    assert (await next_message(channel))["page_texts"] is None and built == [5]
    await agent.close()


async def test_a_page_renders_itself_what_delivery_did_not(stored):
    """Delivery skipped rendering (no page here when it checked): the page still gets the html."""
    from realtime import fragments
    from tests.helpers import Viewer, user_cookie

    session, events = stored
    page = Viewer(session.id, cookie=await user_cookie("late", staff=True), query="?since=3")
    assert (await page.connect())[0]
    await page.ready()
    fresh = {**events[0], "seq": 4}
    await get_channel_layer().group_send(session_group(session.id), {
        "type": "session.events", "events": [fresh], "texts": [encode(fresh)], "page_texts": None})
    assert (await page.next())["html"] == fragments.build_message_html(fresh)
    await page.close()
