"""Open browser connections follow their user's account (realtime.live.revocation)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from project.asgi import application
from realtime import operations
from realtime.live.consumers import CLOSE_RECHECK
from tests.helpers import ORIGIN, Viewer, signed_in_user

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("fresh_channel_layer")]


async def watching(client):
    session = await asyncio.to_thread(operations.create_session, "account changes", "tester")
    viewer = Viewer(session.id, cookie=client.cookies["sessionid"].value)
    assert (await viewer.connect())[0]
    hello = (await viewer.until("caught_up"))[0]
    return session, viewer, hello


async def test_removing_staff_makes_open_pages_reconnect_with_the_new_rights():
    user, client = await signed_in_user("olivia", staff=True)
    session, viewer, hello = await watching(client)
    assert hello["viewer"]["is_admin"] is True
    user.is_staff = False
    await sync_to_async(user.save)()
    assert await viewer.until_closed() == CLOSE_RECHECK
    again = Viewer(session.id, cookie=client.cookies["sessionid"].value)
    assert (await again.connect())[0]
    assert (await again.until("caught_up"))[0]["viewer"]["is_admin"] is False


async def test_a_deactivated_user_is_disconnected_and_not_let_back_in():
    user, client = await signed_in_user("pavel", staff=True)
    session, viewer, _ = await watching(client)
    dashboard = WebsocketCommunicator(application, "/ws/dashboard/", headers=[
        (b"origin", ORIGIN), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])
    assert (await dashboard.connect(timeout=3))[0]
    assert json.loads((await dashboard.receive_output(timeout=3))["text"])["type"] == "hello"
    user.is_active = False
    await sync_to_async(user.save)()
    assert await viewer.until_closed() == CLOSE_RECHECK
    assert (await dashboard.receive_output(timeout=3)) == {"type": "websocket.close", "code": CLOSE_RECHECK}
    again = WebsocketCommunicator(application, "/ws/dashboard/", headers=[
        (b"origin", ORIGIN), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])
    assert (await again.connect(timeout=3))[0] is False


async def test_signing_out_closes_the_users_connections():
    _, client = await signed_in_user("quinn", staff=True)
    _, viewer, _ = await watching(client)
    response = await client.post("/accounts/logout/")
    assert response.status_code in (200, 302)
    assert await viewer.until_closed() == CLOSE_RECHECK


async def test_signing_in_elsewhere_leaves_open_pages_alone():
    user, client = await signed_in_user("rosa", staff=True)
    _, viewer, _ = await watching(client)
    other = AsyncClient()
    assert await other.alogin(username="rosa", password="pw-for-tests")  # stamps last_login only
    await viewer.send({"type": "ping"})
    assert (await viewer.until("pong"))[-1] == {"type": "pong"}
