"""``realtime.live.presence``: joining and leaving, the per-viewer connection cap, and what non-admins may see."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from realtime.live import presence
from realtime.live.groups import session_group
from realtime.models import PresenceEntry
from realtime.visibility import Viewer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

SESSION_ID = "session_0123456789abcdef"
ALICE = Viewer.for_agent("alice", "claude", ["read", "write"])
ROOT = Viewer.for_agent("root", "admin", ["read", "write", "admin"])
ANN = Viewer("user", "ann")


@pytest.fixture(autouse=True)
async def own_presence_state(monkeypatch):
    """This process's presence bookkeeping, empty for each test; background tasks stopped after it."""
    monkeypatch.setattr(presence, "_local", {})
    monkeypatch.setattr(presence, "_pending", {})
    monkeypatch.setattr(presence, "_heartbeat", None)
    yield
    tasks = [presence._heartbeat, *presence._pending.values()]
    for task in tasks:
        if task is not None:
            task.cancel()
    await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)


async def join(viewer, channel, session_id=SESSION_ID):
    return await presence.claim(get_channel_layer(), session_id, channel, viewer)


async def watcher():
    """A channel in the session's group: what every consumer of the session hears."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(session_group(SESSION_ID), channel)
    return channel


async def next_update(channel):
    message = await asyncio.wait_for(get_channel_layer().receive(channel), 5)
    assert message["type"] == "presence.update"
    return message["frame"]


async def test_joining_lists_the_viewer_and_leaving_removes_it_and_tells_the_group():
    group = await watcher()
    assert await join(ALICE, "c1") and await join(ANN, "c2")
    frame = await presence.presence_frame(SESSION_ID)
    assert [(v["kind"], v["id"], v["connections"]) for v in frame["viewers"]] == [("agent", "alice", 1),
                                                                                  ("user", "ann", 1)]
    assert (frame["total"], frame["people"], frame["agents"]) == (2, 1, 1)

    await presence.leave(get_channel_layer(), SESSION_ID, "c1")
    assert not await PresenceEntry.objects.filter(channel_name="c1").aexists()
    frame = await next_update(group)
    assert [v["id"] for v in frame["viewers"]] == ["ann"] and frame["agents"] == 0


async def test_several_changes_at_once_are_announced_once():
    group = await watcher()
    for n in range(5):
        await join(ALICE, f"c{n}")
    for _ in range(5):  # five changes within COALESCE
        presence.announce(get_channel_layer(), SESSION_ID)
    frame = await next_update(group)
    assert frame["viewers"] == [{"kind": "agent", "id": "alice", "agent_type": "claude", "connections": 5}]
    assert frame["agents"] == 1  # distinct viewers, not connections
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(group), presence.COALESCE * 3)


async def test_a_viewer_may_hold_at_most_the_cap_of_connections_across_sessions(settings):
    settings.SCS_MAX_CONNECTIONS_PER_VIEWER = 2
    assert await join(ALICE, "a1")
    assert await join(ALICE, "a2", session_id="session_fedcba9876543210")
    assert not await join(ALICE, "a3")
    assert not await PresenceEntry.objects.filter(channel_name="a3").aexists()  # a refused claim keeps no row
    assert "a3" not in presence._local
    assert await join(ANN, "n1")  # the cap is per viewer
    await presence.leave(get_channel_layer(), SESSION_ID, "a1")
    assert await join(ALICE, "a4")  # a slot was freed


async def test_rows_nobody_refreshed_do_not_count_against_the_cap(settings):
    settings.SCS_MAX_CONNECTIONS_PER_VIEWER = 1
    assert await join(ALICE, "old")
    stale = timezone.now() - timedelta(seconds=presence.TTL + 1)
    await PresenceEntry.objects.filter(channel_name="old").aupdate(last_seen=stale)  # its process died
    assert await join(ALICE, "new")
    assert [v["id"] for v in (await presence.presence_frame(SESSION_ID))["viewers"]] == ["alice"]


async def test_no_cap_when_the_setting_is_zero(settings):
    settings.SCS_MAX_CONNECTIONS_PER_VIEWER = 0
    assert all([await join(ALICE, f"c{n}") for n in range(5)])


async def test_non_admins_see_only_themselves_and_the_counts():
    for viewer, channel in ((ALICE, "c1"), (ROOT, "c2"), (ANN, "c3"), (ANN, "c4")):
        await join(viewer, channel)
    frame = await presence.presence_frame(SESSION_ID)
    assert presence.for_viewer(frame, ROOT) == frame
    for viewer in (ALICE, ANN):
        seen = presence.for_viewer(frame, viewer)
        assert [(v["kind"], v["id"]) for v in seen["viewers"]] == [(viewer.kind, viewer.id)]
        assert (seen["total"], seen["people"], seen["agents"]) == (3, 1, 2)
    assert presence.for_viewer(frame, ANN)["viewers"][0]["connections"] == 2


async def test_a_viewer_left_out_of_a_long_list_still_sees_itself(monkeypatch):
    monkeypatch.setattr(presence, "LIST_LIMIT", 2)
    for n in range(4):
        await join(Viewer.for_agent(f"agent{n}", "claude", ["read"]), f"c{n}")
    frame = await presence.presence_frame(SESSION_ID)
    assert len(frame["viewers"]) == 2 and frame["total"] == 4
    last = Viewer.for_agent("agent3", "claude", ["read"])
    assert presence.for_viewer(frame, last)["viewers"] == [
        {"kind": "agent", "id": "agent3", "agent_type": "claude", "connections": 1}]


async def test_each_viewer_gets_its_own_frame_from_texts_encoded_once_for_all():
    for viewer, channel in ((ALICE, "c1"), (ROOT, "c2"), (ANN, "c3"), (ANN, "c4")):
        await join(viewer, channel)
    frame = await presence.presence_frame(SESSION_ID)
    texts = presence.frame_texts(frame)
    unlisted = Viewer.for_agent("bob", "claude", ["read"])  # not (or no longer) in the list
    for viewer in (ALICE, ROOT, ANN, unlisted):
        assert json.loads(presence.text_for(texts, viewer)) == presence.for_viewer(frame, viewer)


def test_announcements_thin_out_as_a_process_holds_more_connections(monkeypatch):
    monkeypatch.setattr(presence, "_local", dict.fromkeys(map(str, range(10)), SESSION_ID))
    assert presence.window() == presence.COALESCE
    monkeypatch.setattr(presence, "_local", dict.fromkeys(map(str, range(10_000)), SESSION_ID))
    assert presence.window() == 10_000 / presence.ANNOUNCE_RATE > presence.COALESCE
