"""A session closed, reopened or renamed reaches its viewers and the dashboard, through the channel layer or the
broadcast door, in-process through the real ASGI stack."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from realtime import operations, session_state
from realtime.envelope import state_event
from tests.helpers import Viewer, user_cookie
from tests.test_live_pages import Socket

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("fresh_channel_layer")]

SECRET = "broadcast-secret-for-tests"


async def door(session_id, body):
    return await AsyncClient().post(f"/broadcast/{session_id}", json.dumps(body), content_type="application/json",
                                    headers={"Authorization": f"Bearer {SECRET}"})


async def watching(session_id):
    """A signed-in viewer of the session (caught up) and a dashboard socket (greeted)."""
    cookie = await user_cookie("watcher")
    viewer = Viewer(session_id, cookie=cookie)
    assert (await viewer.connect())[0]
    await viewer.ready()
    dashboard = Socket("/ws/dashboard/", cookie=cookie)
    assert await dashboard.connect()
    assert (await dashboard.frame())["type"] == "hello"
    return viewer, dashboard


async def test_closing_and_renaming_reach_the_page_and_the_dashboard_through_the_channel_layer(settings):
    settings.SCS_PUBLISH_VIA = "channel_layer"
    session = await sync_to_async(operations.create_session)("Before", "planner")
    viewer, dashboard = await watching(session.id)
    await sync_to_async(session_state.close)(session.id, by="boss")
    assert await viewer.next() == {"type": "session_state", "session_id": session.id,
                                   "data": {"is_active": False, "purpose": "Before"}}
    assert await dashboard.frame("session_state") == {"type": "session_state", "session_id": session.id,
                                                      "is_active": False, "purpose": "Before"}
    await sync_to_async(session_state.change)(session.id, by="boss", is_active=True, purpose="After")
    assert (await viewer.next())["data"] == {"is_active": True, "purpose": "After"}
    assert (await dashboard.frame("session_state"))["purpose"] == "After"
    await viewer.close()
    await dashboard.close()


async def test_another_process_reaches_them_through_the_broadcast_door(settings):
    settings.SCS_BROADCAST_SECRET = SECRET
    session = await sync_to_async(operations.create_session)("Door", "planner")
    viewer, dashboard = await watching(session.id)
    closed = await sync_to_async(session_state.close)(session.id, by="boss")
    # What an HTTP publisher in another process sends (realtime.strategies.HttpStrategy).
    answer = await door(session.id, {"events": [state_event(closed)]})
    assert answer.status_code == 202, answer.content
    assert (await viewer.next())["data"] == {"is_active": False, "purpose": "Door"}
    assert (await dashboard.frame("session_state"))["is_active"] is False
    await viewer.close()
    await dashboard.close()


@pytest.mark.parametrize("bad", [
    {"is_active": "no", "purpose": "x"},
    {"is_active": False},
    {"is_active": False, "purpose": 3},
    {"is_active": False, "purpose": "x", "extra": 1},
])
async def test_the_door_refuses_a_malformed_state_event(settings, bad):
    settings.SCS_BROADCAST_SECRET = SECRET
    session = await sync_to_async(operations.create_session)("Door", "planner")
    event = {"type": "session_state", "session_id": session.id, "data": bad}
    answer = await door(session.id, event)
    assert answer.status_code == 400 and answer.json()["code"] == "BAD_EVENT"
