"""Attacks in-process: broadcast injection, CSRF on every form, stored XSS, frame floods.

What ``test_broadcast_view.py`` and ``test_consumer.py`` already cover (no or a
wrong secret, foreign origins, malformed frames) is not repeated here.
"""

import hmac
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from project.asgi import application
from project.env import EnvError, env_networks
from realtime import memory, operations, tokens
from realtime.models import AuditEvent, MemoryEntry, Message, Session
from realtime.ratelimit import TokenBucket
from tests.helpers import ORIGIN

SECRET = "broadcast-secret-for-attack-tests"


@pytest.fixture(autouse=True)
def broadcast_secret(settings, fresh_channel_layer):
    settings.SCS_BROADCAST_SECRET = SECRET


def envelope(session_id, seq=1):
    return {"type": "new_message", "session_id": session_id, "seq": seq, "data": {
        "id": seq, "sender": "a", "sender_type": "claude", "content": "c", "visibility": "public", "metadata": {},
        "parent_message_id": None, "timestamp": "2026-01-01T00:00:00Z"}}


def post_broadcast(session_id, secret=SECRET, remote_addr="127.0.0.1"):
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    return Client(REMOTE_ADDR=remote_addr).post(
        f"/broadcast/{session_id}", json.dumps(envelope(session_id)), content_type="application/json",
        headers=headers)


@pytest.fixture
def session_id(db):
    return Session.objects.create(purpose="attacks", created_by="tester").id


# Injection into the broadcast view


def test_the_secret_is_compared_in_constant_time(session_id, monkeypatch):
    compared = []
    real_compare = hmac.compare_digest

    def recording_compare(a, b):
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording_compare)
    assert (post_broadcast(session_id, secret="wrong-secret-of-the-same-size!!!x")).status_code == 403
    assert (post_broadcast(session_id)).status_code == 202
    assert compared == [(b"wrong-secret-of-the-same-size!!!x", SECRET.encode()), (SECRET.encode(), SECRET.encode())]


def test_the_api_key_is_compared_in_constant_time(settings, monkeypatch):
    from realtime import credentials

    settings.SCS_API_KEY = "the-api-key-for-tests"
    compared = []
    real_compare = hmac.compare_digest
    monkeypatch.setattr(credentials.hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real_compare(a, b))
    assert credentials.admit("the-api-key-for-tesTS") is None
    assert credentials.admit("the-api-key-for-tests").is_shared
    assert [pair[1] for pair in compared] == [b"the-api-key-for-tests"] * 2


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_may_broadcast_by_default(session_id, address):
    assert (post_broadcast(session_id, remote_addr=address)).status_code == 202


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "", "not-an-address", "127.0.0.1x"])
@pytest.mark.parametrize("secret", [SECRET, None, "wrong"])
def test_other_clients_are_refused_before_the_secret_is_looked_at(session_id, address, secret):
    answer = post_broadcast(session_id, secret=secret, remote_addr=address)
    assert answer.status_code == 403
    assert answer.json()["code"] == "FORBIDDEN_CLIENT"


def test_allowed_networks_are_a_setting(session_id, settings):
    settings.SCS_BROADCAST_ALLOWED_IPS = ["10.0.0.0/8", "fd00::/8"]
    assert (post_broadcast(session_id, remote_addr="10.200.3.4")).status_code == 202
    assert (post_broadcast(session_id, remote_addr="fd12::5")).status_code == 202
    assert (post_broadcast(session_id, remote_addr="127.0.0.1")).status_code == 403
    assert (post_broadcast(session_id, secret="wrong", remote_addr="10.200.3.4")).status_code == 403


def test_allowed_networks_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv("SCS_BROADCAST_ALLOWED_IPS", "127.0.0.1, 10.0.0.0/8 ,::1")
    assert env_networks("SCS_BROADCAST_ALLOWED_IPS", []) == ["127.0.0.1", "10.0.0.0/8", "::1"]
    monkeypatch.setenv("SCS_BROADCAST_ALLOWED_IPS", "127.0.0.1,localhost")
    with pytest.raises(EnvError, match="SCS_BROADCAST_ALLOWED_IPS"):
        env_networks("SCS_BROADCAST_ALLOWED_IPS", [])


# CSRF: every form that changes state refuses a POST without the token


def csrf_token_from(client, url):
    client.get(url)
    return client.cookies["csrftoken"].value


@pytest.fixture
def people(db):
    users = get_user_model().objects
    return {
        "user": users.create_user("csrf-user", password="pw-for-csrf-tests"),
        "root": users.create_superuser("csrf-root", "root@example.com", "pw-for-csrf-tests"),
    }


def test_login_form_needs_the_csrf_token(people):
    client = Client(enforce_csrf_checks=True)
    form = {"username": "csrf-user", "password": "pw-for-csrf-tests"}
    assert client.post(reverse("login"), form).status_code == 403
    assert "_auth_user_id" not in client.session
    token = csrf_token_from(client, reverse("login"))
    assert client.post(reverse("login"), {**form, "csrfmiddlewaretoken": token}).status_code == 302
    assert client.session["_auth_user_id"] == str(people["user"].pk)


def test_logout_form_needs_the_csrf_token(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["user"])
    assert client.post(reverse("logout")).status_code == 403
    assert client.get(reverse("realtime:dashboard")).status_code == 200  # still signed in
    token = csrf_token_from(client, reverse("realtime:dashboard"))
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get(reverse("realtime:dashboard")).status_code == 302  # signed out


def test_admin_forms_need_the_csrf_token(people):
    session = Session.objects.create(purpose="before", created_by="tester")
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("admin:login"), {"username": "csrf-root", "password": "pw"}).status_code == 403
    client.force_login(people["root"])
    change = reverse("admin:realtime_session_change", args=[session.pk])
    delete = reverse("admin:realtime_session_delete", args=[session.pk])
    form = {"purpose": "after", "created_by": "tester", "metadata": "{}", "is_active": "on",
            "messages-TOTAL_FORMS": "0", "messages-INITIAL_FORMS": "0", "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000"}
    assert client.post(change, form).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:password_change"), {}).status_code == 403
    assert client.post(reverse("admin:logout")).status_code == 403
    session.refresh_from_db()
    assert session.purpose == "before"
    token = csrf_token_from(client, change)
    assert client.post(delete, {"post": "yes", "csrfmiddlewaretoken": token}).status_code == 302
    assert not Session.objects.filter(pk=session.pk).exists()


# Stored XSS: every field a writer controls is rendered escaped in server pages

PAYLOADS = ['<script>alert("x1")</script>', '"><img src=x onerror=alert(2)>', "</textarea><svg onload=alert(3)>"]
RAW_MARKERS = ["<script>alert(", "<img src=x", "<svg onload"]


@pytest.fixture
def stored_payloads(db):
    payload = " ".join(PAYLOADS)
    session = operations.create_session(f"purpose {payload}", "<b>creator</b>" + PAYLOADS[0][:40],
                                        metadata={"k": payload, payload[:30]: "v"})
    first = operations.add_message(session.id, sender=PAYLOADS[1][:90], sender_type=PAYLOADS[0][:45],
                                   content=f"content {payload}", metadata={"note": payload})
    operations.add_message(session.id, sender="replier", sender_type="claude", content=PAYLOADS[2],
                           parent_message_id=first.id)
    memory.set_memory(PAYLOADS[1][:90], "key-1", {"v": payload}, session_id=session.id, metadata={"m": payload})
    AuditEvent.objects.create(event_type="note", agent_id=PAYLOADS[0][:90], session_id=session.id,
                              detail={"d": payload})
    return session


def pages_showing(session):
    message = Message.objects.filter(session=session).first()
    entry = MemoryEntry.objects.first()
    event = AuditEvent.objects.filter(event_type="note").first()
    return [
        reverse("realtime:dashboard"),
        reverse("realtime:dashboard") + "?q=purpose",
        reverse("realtime:session", args=[session.id]),
        reverse("realtime:memory"),
        reverse("admin:realtime_session_changelist"),
        reverse("admin:realtime_session_change", args=[session.pk]),
        reverse("admin:realtime_message_changelist"),
        reverse("admin:realtime_message_change", args=[message.pk]),
        reverse("admin:realtime_memoryentry_changelist"),
        reverse("admin:realtime_memoryentry_change", args=[entry.pk]),
        reverse("admin:realtime_auditevent_changelist"),
        reverse("admin:realtime_auditevent_change", args=[event.pk]),
    ]


def test_stored_payloads_are_rendered_inert(stored_payloads, admin_client):
    for url in pages_showing(stored_payloads):
        answer = admin_client.get(url)
        assert answer.status_code == 200, url
        html = answer.content.decode()
        for raw in RAW_MARKERS:
            assert raw not in html, f"{url} renders {raw!r} unescaped"
        assert "&lt;" in html, f"{url} does not show the stored fields at all"


def test_json_endpoint_for_earlier_messages_is_json_not_html(stored_payloads, admin_client):
    answer = admin_client.get(reverse("realtime:session_messages", args=[stored_payloads.id]) + "?before=100")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    assert answer["X-Content-Type-Options"] == "nosniff"


def test_pages_forbid_inline_scripts(admin_client, db):
    policy = admin_client.get(reverse("realtime:dashboard"))["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'self'" in script_src


# Floods on the WebSocket


def test_token_bucket_allows_the_burst_then_the_rate():
    now = [100.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one more token at 2 per second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100  # saving up is capped at the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


@pytest.mark.django_db(transaction=True)
async def test_a_frame_flood_gets_an_error_then_close_4429(session_id, settings):
    settings.SCS_WS_FRAME_RATE = 1
    settings.SCS_WS_FRAME_BURST = 5
    token = tokens.issue("flooder", "claude", ["read"])[0]
    comm = WebsocketCommunicator(application, f"/ws/{session_id}/",
                                 headers=[(b"origin", ORIGIN), (b"authorization", f"Bearer {token}".encode())])
    assert (await comm.connect(timeout=3))[0]
    frames = []
    for _ in range(50):
        await comm.send_to(text_data=json.dumps({"type": "ping"}))
    closed = None
    while closed is None:
        output = await comm.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            closed = output["code"]
        else:
            frames.append(json.loads(output["text"]))
    await comm.disconnect()
    kinds = [f["type"] for f in frames if f["type"] != "presence"]
    assert kinds == ["hello", "caught_up", "pong", "pong", "pong", "pong", "pong", "error"]
    assert frames[-1]["code"] == "RATE_LIMITED"
    assert closed == 4429


@pytest.mark.django_db(transaction=True)
async def test_an_unauthenticated_flood_is_limited_too(session_id, settings):
    settings.SCS_WS_FRAME_BURST = 3
    comm = WebsocketCommunicator(application, f"/ws/{session_id}/", headers=[(b"origin", ORIGIN)])
    assert (await comm.connect(timeout=3))[0]
    for _ in range(20):
        await comm.send_to(bytes_data=b"\x00" * 100)
    seen = []
    while True:
        output = await comm.receive_output(timeout=3)
        seen.append(output)
        if output["type"] == "websocket.close":
            break
    await comm.disconnect()
    codes = [json.loads(output["text"])["code"] for output in seen[:-1]]
    assert codes == ["BAD_FRAME", "BAD_FRAME", "BAD_FRAME", "RATE_LIMITED"]  # the burst, then the limit
    assert seen[-1]["code"] == 4429
    assert await sync_to_async(Message.objects.count)() == 0
