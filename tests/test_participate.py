"""People in sessions with Django's test client: the composer's endpoint, sessions from the dashboard, staff's
close/reopen/purpose, the state filter, and the export (page download and ``manage.py export_session``)."""

import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings

from realtime import operations, session_state
from realtime.models import AuditEvent, Message, Session, Visibility
from realtime.views.participate import post_limits

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
FORM = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}  # what a browser sends with a plain form post
RESTRICTED = {"private": "PRIVATE-CONTENT", "agent_only": "AGENT-ONLY-CONTENT", "admin_only": "ADMIN-ONLY-CONTENT"}


@pytest.fixture(autouse=True)
def fresh_allowances(monkeypatch):
    """Each test starts with full allowances (buckets are per process, keyed by username)."""
    monkeypatch.setattr(post_limits, "buckets", type(post_limits.buckets)())


@pytest.fixture(autouse=True)
def nothing_published(monkeypatch):
    """No Daphne here: what would be published is kept for the test to look at."""
    published = []
    monkeypatch.setattr("realtime.publisher.committed", published.append)
    monkeypatch.setattr("realtime.publisher.state_changed", published.append)
    return published


@pytest.fixture
def session():
    return operations.create_session("Plan the release", "planner")


def user(name, staff=False):
    return get_user_model().objects.create_user(name, password="pw", is_staff=staff)


def client_for(name, staff=False, **options):
    client = Client(**options)
    client.force_login(user(name, staff))
    return client


@pytest.fixture
def member():
    return client_for("member")


@pytest.fixture
def boss():
    return client_for("boss", staff=True)


def post(client, session, content="hello", **fields):
    return client.post(f"/sessions/{session.id}/post", {"content": content, **fields}, **JSON)


def say(session, content, visibility="public", **kwargs):
    return operations.add_message(session.id, sender="planner", sender_type="claude", content=content,
                                  visibility=visibility, may_write_admin_only=True, **kwargs)


def offered_levels(client, session):
    page = client.get(f"/sessions/{session.id}/").content.decode()
    select = re.search(r'<select name="visibility">(.*?)</select>', page, re.S).group(1)
    return re.findall(r'<option value="([a-z_]+)"', select)


# The composer's endpoint


def test_a_post_is_stored_as_the_person_through_add_message_and_published(member, session, nothing_published,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(member, session, "first from a person")
    assert answer.status_code == 201
    body = answer.json()
    stored = Message.objects.get(pk=body["message_id"])
    assert (stored.sender, stored.sender_type, stored.visibility, stored.seq) == ("member", "human", "public", 1)
    assert body["seq"] == 1 and body["message"]["type"] == "new_message"
    assert body["message"]["data"]["content"] == "first from a person"
    page_event = body["message"]
    assert "<strong>" not in page_event["html"] and "first from a person" in page_event["html"]
    assert nothing_published == [{k: v for k, v in page_event.items() if k != "html"}]  # add_message's one hook


def test_a_reply_names_its_parent_and_a_parent_of_another_session_is_refused(member, session):
    root = say(session, "root")
    answer = post(member, session, "a reply", parent_message_id=str(root.id))
    assert answer.status_code == 201
    assert Message.objects.get(pk=answer.json()["message_id"]).parent_id == root.id
    elsewhere = say(operations.create_session("other", "planner"), "elsewhere")
    for parent in (str(elsewhere.id), "12x", "-1"):
        refused = post(member, session, "lost", parent_message_id=parent)
        assert refused.status_code == 400 and refused.json()["code"] == "PARENT_NOT_FOUND", parent
    assert Message.objects.filter(session=session).count() == 2


def test_a_member_is_offered_public_only_and_a_forged_hidden_visibility_stores_nothing(member, session):
    assert offered_levels(member, session) == ["public"]
    for level in ("private", "agent_only", "admin_only"):
        answer = post(member, session, f"forged {level}", visibility=level)
        assert answer.status_code == 403, level
        assert answer.json()["code"] == "PERMISSION_DENIED" and "public" in answer.json()["hint"]
    answer = post(member, session, "nonsense level", visibility="everyone")
    assert answer.status_code == 400 and answer.json()["code"] == "INVALID_VISIBILITY"
    assert not Message.objects.filter(session=session).exists()


@override_settings(SCS_USER_VISIBILITY=["public", "agent_only", "private"])
def test_levels_granted_by_scs_user_visibility_may_be_posted_but_never_private(member, session):
    assert offered_levels(member, session) == ["public", "agent_only"]
    assert post(member, session, "for agents", visibility="agent_only").status_code == 201
    assert post(member, session, "private", visibility="private").status_code == 403


def test_staff_may_post_at_every_level(boss, session):
    assert offered_levels(boss, session) == list(Visibility.values)
    for level in Visibility.values:
        assert post(boss, session, level, visibility=level).status_code == 201
    assert list(Message.objects.values_list("visibility", flat=True)) == list(Visibility.values)


@override_settings(SCS_MAX_CONTENT_LENGTH=20)
def test_the_content_limits_are_add_messages(member, session):
    assert post(member, session, "x" * 21).json()["code"] == "CONTENT_TOO_LARGE"
    assert post(member, session, "x" * 21).status_code == 413
    assert post(member, session, "   ").json()["code"] == "INVALID_CONTENT"
    assert not Message.objects.exists()


def test_csrf_is_enforced(session):
    client = client_for("member", enforce_csrf_checks=True)
    assert post(client, session, "no token").status_code == 403
    assert client.post("/sessions/new", {"purpose": "no token"}, **JSON).status_code == 403
    assert not Message.objects.exists() and Session.objects.count() == 1
    page = client.get(f"/sessions/{session.id}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert post(client, session, "with the form's token", csrfmiddlewaretoken=token).status_code == 201


@override_settings(SCS_USER_POST_RATE=0.01, SCS_USER_POST_BURST=2)
def test_past_the_allowance_a_post_is_answered_429_with_retry_after(member, session):
    assert [post(member, session, f"n{n}").status_code for n in range(2)] == [201, 201]
    answer = post(member, session, "one too many")
    assert answer.status_code == 429
    assert answer.json()["code"] == "RATE_LIMITED" and answer.json()["retry_after"] >= 1
    assert int(answer["Retry-After"]) == answer.json()["retry_after"]
    assert Message.objects.count() == 2
    assert post(client_for("other"), session, "someone else's allowance").status_code == 201


def test_without_script_a_post_redirects_and_a_refusal_shows_on_the_page_with_the_text(member, session):
    answer = member.post(f"/sessions/{session.id}/post", {"content": "plain form", "visibility": "public"}, **FORM)
    assert answer.status_code == 302 and answer["Location"] == f"/sessions/{session.id}/#m1"
    session_state.close(session.id, by="boss")
    refused = member.post(f"/sessions/{session.id}/post", {"content": "kept <text>"}, **FORM)
    assert refused.status_code == 409
    page = refused.content.decode()
    assert "kept &lt;text&gt;</textarea>" in page and "is closed" in page
    assert '<fieldset id="composer-fields" disabled>' in page


def test_posting_to_an_unknown_session_is_404(member):
    answer = member.post("/sessions/session_0123456789abcdef/post", {"content": "x"}, **JSON)
    assert answer.status_code == 404 and answer.json()["code"] == "SESSION_NOT_FOUND"


def test_signed_out_and_get_are_refused(client, session):
    assert client.post(f"/sessions/{session.id}/post", {"content": "x"}).status_code == 302  # to sign in
    member = client_for("member")
    assert member.get(f"/sessions/{session.id}/post").status_code == 405
    assert not Message.objects.exists()


# Sessions from the pages


def test_a_session_is_created_from_the_dashboard_by_the_person(member):
    page = member.get("/").content.decode()
    assert 'action="/sessions/new"' in page and 'name="purpose"' in page
    answer = member.post("/sessions/new", {"purpose": "  Write the launch notes  "}, **FORM)
    created = Session.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/sessions/{created.id}/"
    assert (created.purpose, created.created_by, created.is_active) == ("Write the launch notes", "member", True)
    assert member.post("/sessions/new", {"purpose": "by script"}, **JSON).json()["session_id"]
    refused = member.post("/sessions/new", {"purpose": "   "}, **FORM)
    assert refused.status_code == 400 and "purpose must not be empty" in refused.content.decode()
    assert member.post("/sessions/new", {"purpose": ""}, **JSON).json()["code"] == "INVALID_PURPOSE"


@pytest.mark.django_db(transaction=True)  # the after-commit hooks run
def test_staff_close_reopen_and_rename_and_everyone_is_told(boss, member, session, nothing_published):
    for action in ("close", "reopen"):
        refused = member.post(f"/sessions/{session.id}/{action}", **JSON)
        assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    refused = member.post(f"/sessions/{session.id}/purpose", {"purpose": "hijacked"}, **JSON)
    assert refused.status_code == 403
    session.refresh_from_db()
    assert (session.is_active, session.purpose) == (True, "Plan the release")
    assert nothing_published == []

    closed = boss.post(f"/sessions/{session.id}/close", **JSON).json()
    assert closed == {"success": True, "session_id": session.id, "is_active": False, "purpose": "Plan the release"}
    with pytest.raises(operations.OperationError) as caught:
        say(session, "an agent, too late")
    assert caught.value.code == "SESSION_CLOSED"
    assert post(member, session, "a person, too late").json()["code"] == "SESSION_CLOSED"
    assert post(boss, session, "staff, too late").status_code == 409
    assert boss.post(f"/sessions/{session.id}/reopen", **FORM)["Location"] == f"/sessions/{session.id}/"
    assert post(member, session, "open again").status_code == 201
    renamed = boss.post(f"/sessions/{session.id}/purpose", {"purpose": "Ship the release"}, **JSON).json()
    assert renamed["purpose"] == "Ship the release"
    assert boss.post(f"/sessions/{session.id}/purpose", {"purpose": " "}, **JSON).json()["code"] == "INVALID_PURPOSE"

    states = [(event["data"]["is_active"], event["data"]["purpose"]) for event in nothing_published
              if event["type"] == "session_state"]
    assert states == [(False, "Plan the release"), (True, "Plan the release"), (True, "Ship the release")]
    assert boss.post(f"/sessions/{session.id}/reopen", **JSON).status_code == 200  # no change: nothing announced
    assert len([event for event in nothing_published if event["type"] == "session_state"]) == 3
    audited = AuditEvent.objects.filter(session_id=session.id).order_by("pk").values_list("event_type", "agent_id")
    assert [entry for entry in audited if entry[0] != "session_created"] == [
        ("session_closed", "boss"), ("session_reopened", "boss"), ("session_purpose_changed", "boss")]


def test_the_page_shows_staff_controls_to_staff_only(boss, member, session):
    assert "Close session" in boss.get(f"/sessions/{session.id}/").content.decode()
    member_page = member.get(f"/sessions/{session.id}/").content.decode()
    assert "Close session" not in member_page and "Edit purpose" not in member_page
    assert f"/sessions/{session.id}/export.md" in member_page


def test_the_dashboard_filters_open_and_closed(member):
    opened = operations.create_session("still open", "planner")
    closed = operations.create_session("done and closed", "planner")
    session_state.close(closed.id, by="boss")

    def listed(query):
        return re.findall(r'data-session-id="(session_[0-9a-f]{16})"', member.get(f"/{query}").content.decode())

    assert set(listed("")) == {opened.id, closed.id}
    assert listed("?state=open") == [opened.id]
    assert listed("?state=closed") == [closed.id]
    assert set(listed("?state=anything")) == {opened.id, closed.id}
    assert listed("?state=closed&q=open") == []
    page = member.get("/?state=closed").content.decode()
    assert '<a href="?state=closed" aria-current="page">Closed</a>' in page
    assert '<a href="?state=open">Open</a>' in page


# Export


@pytest.fixture
def mixed(session):
    """A session with one message at each level, a reply and metadata."""
    root = say(session, "public root", metadata={"step": 1})
    for level, content in RESTRICTED.items():
        say(session, content, visibility=level)
    say(session, "public reply", parent_message_id=root.id)
    return session


def exported(client, session, fmt):
    answer = client.get(f"/sessions/{session.id}/export.{fmt}")
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == f'attachment; filename="{session.id}.{fmt}"'
    return b"".join(answer.streaming_content).decode()


def test_the_download_holds_exactly_what_the_user_may_see(member, boss, mixed):
    as_json = json.loads(exported(member, mixed, "json"))
    assert [m["seq"] for m in as_json["messages"]] == [1, 5]
    assert as_json["session"]["id"] == mixed.id
    assert as_json["messages"][1]["parent_message_id"] == as_json["messages"][0]["id"]
    markdown = exported(member, mixed, "md")
    assert re.findall(r"^### #(\d+) ", markdown, re.M) == ["1", "5"]
    assert "Reply to #1" in markdown and '"step": 1' in markdown
    for content in RESTRICTED.values():
        assert content not in markdown and content not in json.dumps(as_json)
    assert [m["seq"] for m in json.loads(exported(boss, mixed, "json"))["messages"]] == [1, 2, 3, 4, 5]
    assert member.get(f"/sessions/{mixed.id}/export.pdf").status_code == 404


def test_export_session_command_writes_everything(mixed, tmp_path):
    out = io.StringIO()
    call_command("export_session", mixed.id, "--format", "json", stdout=out)
    everything = json.loads(out.getvalue())
    assert [m["content"] for m in everything["messages"]] == ["public root", *RESTRICTED.values(), "public reply"]
    assert everything["messages"][4]["parent_message_id"] == everything["messages"][0]["id"]
    target = tmp_path / "session.md"
    call_command("export_session", mixed.id, "--output", str(target), stderr=io.StringIO())
    markdown = target.read_text()
    assert markdown.startswith("# Plan the release\n")
    assert re.findall(r"^### #(\d+) ", markdown, re.M) == ["1", "2", "3", "4", "5"]
    with pytest.raises(Exception, match="no session"):
        call_command("export_session", "session_0123456789abcdef")


def test_a_change_saved_in_the_admin_is_announced(session, nothing_published, django_capture_on_commit_callbacks):
    admin = client_for("root", staff=True)
    get_user_model().objects.filter(username="root").update(is_superuser=True)
    form = {"purpose": "Renamed in the admin", "created_by": session.created_by, "metadata": "{}"}  # is_active off
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(f"/admin/realtime/session/{session.id}/change/", form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert nothing_published == [{"type": "session_state", "session_id": session.id,
                                   "data": {"is_active": False, "purpose": "Renamed in the admin"}}]
