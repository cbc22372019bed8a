"""The pages with Django's test client: sign-in, visibility, escaping, CSP, search and paging."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from realtime import operations
from realtime.models import MemoryEntry, Session
from realtime.views.pages import FIRST_RENDER, PAGE_SIZE

pytestmark = pytest.mark.django_db

XSS = "<img src=x onerror=alert(1)>"
RESTRICTED = {"private": "PRIVATE-CONTENT", "agent_only": "AGENT-ONLY-CONTENT", "admin_only": "ADMIN-ONLY-CONTENT"}


@pytest.fixture
def session():
    return operations.create_session("Refactor billing", "planner")


def say(session, content, sender="planner", sender_type="claude", **kwargs):
    return operations.add_message(
        session.id, sender=sender, sender_type=sender_type, content=content, may_write_admin_only=True, **kwargs
    )


@pytest.fixture
def member(client):
    user = get_user_model().objects.create_user("member", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("boss", password="pw", is_staff=True)
    client.force_login(user)
    return user


def pages(session):
    return ["/", f"/sessions/{session.id}/", "/memory/", f"/sessions/{session.id}/messages?before=10"]


def test_every_page_needs_sign_in(client, session):
    for url in pages(session):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_sign_in_form_signs_in_and_sign_out_needs_post(client):
    get_user_model().objects.create_user("member", password="a-long-password")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    response = client.post("/accounts/login/", {"username": "member", "password": "a-long-password"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client):
    get_user_model().objects.create_user("member", password="a-long-password")
    response = client.post("/accounts/login/", {"username": "member", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content
    assert client.get("/").status_code == 302


def csp(response):
    return response.get("Content-Security-Policy", "")


def test_strict_csp_on_every_page(client, staff, session):
    say(session, "hello")
    client.logout()
    assert "script-src 'self'" in csp(client.get("/accounts/login/"))
    client.force_login(staff)
    for url in [*pages(session), "/admin/", "/admin/realtime/message/", "/no-such-page/"]:
        policy = csp(client.get(url))
        assert "script-src 'self'" in policy, url
        assert "style-src 'self'" in policy, url
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url


def test_pages_have_no_inline_script_or_style(client, staff, session):
    say(session, "hello", metadata={"a": 1})
    for url in ["/", f"/sessions/{session.id}/", "/memory/"]:
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert "<style" not in html and " style=" not in html, url
        assert not re.search(r"\son[a-z]+=", html), url


def test_memory_page_is_for_staff_only(client, member):
    assert client.get("/memory/").status_code == 403


def test_memory_page_lists_global_and_session_entries_with_expiry(client, staff, session):
    soon = timezone.now() + timedelta(hours=2)
    MemoryEntry.objects.create(agent_id="planner", key="style-guide", value={"tabs": False})
    MemoryEntry.objects.create(agent_id="planner", key="progress", session=session, value=[1, 2], expires_at=soon)
    MemoryEntry.objects.create(agent_id="planner", key="stale", value=1, expires_at=timezone.now() - timedelta(1))
    html = client.get("/memory/").content.decode()
    assert "style-guide" in html and "progress" in html and session.id in html
    assert soon.strftime("%Y-%m-%d %H:%M") in html
    assert "stale" not in html
    assert "stale" in client.get("/memory/?expired=1").content.decode()
    only_global = client.get("/memory/?scope=global").content.decode()
    assert "style-guide" in only_global and "progress" not in only_global


def test_dashboard_search_by_purpose(client, member):
    operations.create_session("Migrate payments to Postgres", "planner")
    operations.create_session("Write release notes", "writer")
    html = client.get("/?q=postgres").content.decode()
    assert "Migrate payments to Postgres" in html and "Write release notes" not in html
    assert "No session matches" in client.get("/?q=nothing-like-this").content.decode()


def test_dashboard_pages_past_fifty(client, member):
    for n in range(PAGE_SIZE + 5):
        operations.create_session(f"session number {n:03d}", "planner")
    first = client.get("/")
    second = client.get("/?page=2")
    assert len(first.context["sessions"]) == PAGE_SIZE
    assert len(second.context["sessions"]) == 5
    shown = {s.id for s in first.context["sessions"]} | {s.id for s in second.context["sessions"]}
    assert shown == set(Session.objects.values_list("id", flat=True))
    assert 'href="?page=2"' in first.content.decode()
    assert "Page 2 of 2" in second.content.decode()
    # The search term survives paging.
    assert 'href="?q=number&amp;page=2"' in client.get("/?q=number").content.decode()


def test_dashboard_shows_counts_and_only_visible_agents(client, member, session):
    say(session, "hello", sender="planner")
    say(session, "secret", sender="hidden-agent", visibility="private")
    row = client.get("/").context["sessions"][0]
    assert row.id == session.id and row.visible_count == 1
    assert row.agents == ["planner"]


def dashboard_rows(client):
    """``[(session id, count shown, last activity shown)]`` as the dashboard's HTML shows them."""
    html = client.get("/").content.decode()
    return [(sid, int(count), when) for sid, count, when in re.findall(
        r'<tr data-session-id="([^"]+)">.*?<td class="num count">(\d+)</td>.*?<time datetime="([^"]+)"', html, re.S)]


def test_dashboard_counts_and_dates_only_what_the_viewer_may_see(client, member, session):
    public = say(session, "public")
    for level in RESTRICTED:
        say(session, "hidden", visibility=level)
    hidden_only = operations.create_session("Incident review", "planner")
    say(hidden_only, "hidden", visibility="admin_only")
    empty = operations.create_session("Just created", "planner")
    # The member: the hidden-only session is not listed; counts and last activity are the public message's.
    rows = dashboard_rows(client)
    assert [row[0] for row in rows] == [empty.id, session.id]
    assert rows[1][1:] == (1, timezone.localtime(public.timestamp, timezone.UTC).isoformat())
    assert "Incident review" not in client.get("/").content.decode()
    assert client.get("/").context["page"].paginator.count == 2
    # Staff see everything, counted whole.
    client.force_login(get_user_model().objects.create_user("boss", password="pw", is_staff=True))
    assert {row[0]: row[1] for row in dashboard_rows(client)} == {hidden_only.id: 1, session.id: 4, empty.id: 0}


def test_dashboard_orders_by_the_newest_activity_the_viewer_may_see(client, member):
    older, newer = operations.create_session("older", "a"), operations.create_session("newer", "b")
    say(older, "public first")
    say(newer, "public second")
    say(older, "hidden last", visibility="admin_only")  # moves the session up for staff only
    assert [row[0] for row in dashboard_rows(client)] == [newer.id, older.id]


def test_fields_are_escaped_in_server_rendered_html(client, staff):
    evil = operations.create_session(XSS, XSS)
    say(evil, XSS, sender=XSS, sender_type=XSS, metadata={XSS: XSS})
    for url in ["/", f"/sessions/{evil.id}/"]:
        html = client.get(url).content.decode()
        assert "<img" not in html, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, url


def test_non_staff_sees_only_public_messages_on_first_render(client, member, session):
    say(session, "PUBLIC-CONTENT")
    for level, content in RESTRICTED.items():
        say(session, content, visibility=level)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    assert "PUBLIC-CONTENT" in html
    for content in RESTRICTED.values():
        assert content not in html
    older = client.get(f"/sessions/{session.id}/messages?before=100").json()
    assert [m["data"]["content"] for m in older["messages"]] == ["PUBLIC-CONTENT"]


def test_staff_sees_every_message(client, staff, session):
    for level, content in RESTRICTED.items():
        say(session, content, visibility=level)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    for content in RESTRICTED.values():
        assert content in html


def test_user_visibility_setting_grants_more_but_never_private(client, member, session, settings):
    settings.SCS_USER_VISIBILITY = ["public", "agent_only", "private"]
    for level, content in RESTRICTED.items():
        say(session, content, visibility=level)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    assert "AGENT-ONLY-CONTENT" in html
    assert "PRIVATE-CONTENT" not in html and "ADMIN-ONLY-CONTENT" not in html


def test_replies_name_their_parent_for_the_one_threading_rule(client, member, session):
    """The page comes flat, in seq order; session.js threads it (tests/test_render_live.py checks the result)."""
    root = say(session, "root message")
    reply = say(session, "a reply", parent_message_id=root.id)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    assert f'id="m{reply.seq}" data-seq="{reply.seq}" data-id="{reply.id}" data-parent-id="{root.id}"' in html
    assert 'data-parent-id' not in html[html.index(f'id="m{root.seq}"'):html.index(f'id="m{reply.seq}"')]
    assert html.index(f'id="m{root.seq}"') < html.index(f'id="m{reply.seq}"')


def test_metadata_is_shown_on_demand(client, member, session):
    say(session, "with metadata", metadata={"step": "plan", "hours": 6})
    html = client.get(f"/sessions/{session.id}/").content.decode()
    details = html[html.index('<details class="metadata">'):]
    assert "<summary>Metadata</summary>" in details
    assert json.loads(details[details.index("<pre>") + 5:details.index("</pre>")].replace("&quot;", '"')) == {
        "hours": 6, "step": "plan"}


def test_first_render_is_bounded_and_older_messages_load_on_demand(client, member, session):
    for n in range(FIRST_RENDER + 3):
        say(session, f"m{n + 1}")
    response = client.get(f"/sessions/{session.id}/")
    html = response.content.decode()
    assert html.count('<li class="message') == FIRST_RENDER
    assert 'id="load-earlier"' in html and 'data-before="4"' in html
    older = client.get(f"/sessions/{session.id}/messages?before=4").json()
    assert [m["seq"] for m in older["messages"]] == [1, 2, 3] and older["has_more"] is False
    assert client.get(f"/sessions/{session.id}/messages?before=x").status_code == 400


def test_unknown_or_malformed_session_is_404(client, member):
    assert client.get("/sessions/session_0123456789abcdef/").status_code == 404
    assert client.get("/sessions/not-a-session/").status_code == 404


def test_admin_lists_search_and_filter(client, staff, session):
    get_user_model().objects.filter(pk=staff.pk).update(is_superuser=True)
    say(session, "findable words", metadata={"a": 1})
    MemoryEntry.objects.create(agent_id="planner", key="notes", value={"x": 1})
    for url in [
        "/admin/realtime/session/?q=billing&is_active__exact=1",
        "/admin/realtime/message/?q=findable&audience=public&visibility__exact=public",
        "/admin/realtime/memoryentry/?scope=global&expiry=live&q=planner",
        "/admin/realtime/auditevent/?q=planner",
        # Admin URLs quote ids: "_40" in a raw id would read as "@".
        reverse("admin:realtime_session_change", args=[quote(session.id)]),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"findable words" in client.get("/admin/realtime/message/?q=findable").content
    assert b"notes" in client.get("/admin/realtime/memoryentry/?scope=global").content
    assert b"notes" not in client.get("/admin/realtime/memoryentry/?scope=session").content


def test_pages_say_which_close_codes_end_reconnecting_from_the_one_list(client, staff, session):
    """session.js and memory.js read the codes from the page rather than repeating them."""
    from html import unescape

    from realtime.live.closecodes import FINAL

    for url in [f"/sessions/{session.id}/", "/memory/"]:
        html = client.get(url).content.decode()
        found = re.findall(r'data-final-closes="([^"]*)"', html)
        assert found and all(json.loads(unescape(text)) == {str(k): v for k, v in FINAL.items()} for text in found)


def test_the_memory_tab_is_for_staff_and_lists_only_the_sessions_unexpired_entries(client, session):
    other = operations.create_session("elsewhere", "planner")
    MemoryEntry.objects.create(agent_id="planner", key="mine", session=session, value="MINE-VALUE")
    MemoryEntry.objects.create(agent_id="planner", key="theirs", session=other, value="THEIRS-VALUE")
    MemoryEntry.objects.create(agent_id="planner", key="global", value="GLOBAL-VALUE")
    MemoryEntry.objects.create(agent_id="planner", key="old", session=session, value="OLD-VALUE",
                               expires_at=timezone.now() - timedelta(seconds=1))
    user = get_user_model().objects.create_user("plain", password="pw")
    client.force_login(user)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    assert "panel-memory" not in html and "memory.js" not in html and "MINE-VALUE" not in html
    user.is_staff = True
    user.save()
    client.force_login(user)
    html = client.get(f"/sessions/{session.id}/").content.decode()
    tab = html[html.index('id="panel-memory"'):]
    assert "MINE-VALUE" in tab and "memory.js" in html
    assert not {"THEIRS-VALUE", "GLOBAL-VALUE", "OLD-VALUE"} & set(re.findall(r"[A-Z]+-VALUE", tab))
    assert '<span id="memory-count" class="count">1</span>' in html
