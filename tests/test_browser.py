"""The pages in headless Chromium against real Daphne and sidecar processes.

Messages are written through the MCP sidecar with a real MCP client, exactly as
agents write them; the browser signs in with the login form and watches.
"""

import contextlib
import json
import re

import pytest
import pytest_asyncio
from django.contrib.admin.utils import quote
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.browser import require_chromium
from tests.helpers import new_session
from tests.stack import Stack

# One event loop (and one Chromium) for the module.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "browser-tests-password"
XSS = "<img src=x onerror=alert(1)>"
RESTRICTED = {"private": "PRIVATE-CONTENT", "agent_only": "AGENT-ONLY-CONTENT", "admin_only": "ADMIN-ONLY-CONTENT"}
CREATE_USERS = (
    "from django.contrib.auth.models import User; "
    f"User.objects.create_user('member', password={PASSWORD!r}); "
    f"User.objects.create_user('boss', password={PASSWORD!r}, is_staff=True, is_superuser=True)"
)


def add_users(stack):
    stack.manage("shell", "-c", CREATE_USERS)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Daphne and the sidecar with a staff user ``boss`` and a plain user ``member``."""
    require_chromium()
    running = Stack(tmp_path_factory.mktemp("browser")).start()
    try:
        add_users(running)
        yield running
    finally:
        running.stop()


OPEN_CONTEXTS = []


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def close_contexts():
    """Each test's browser contexts (and their WebSockets) are closed after it."""
    yield
    while OPEN_CONTEXTS:
        await OPEN_CONTEXTS.pop().close()


async def new_context(browser, **options):
    context = await browser.new_context(**options)
    OPEN_CONTEXTS.append(context)
    return context


class Tab:
    """A signed-in page plus what it saw: dialogs, console errors, WebSocket frames."""

    def __init__(self, page):
        self.page = page
        self.dialogs = []
        self.console_errors = []
        self.frames = []
        page.on("dialog", self._dialog)
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: self.frames.append(str(payload))))

    async def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def seqs(self):
        return await self.page.eval_on_selector_all(
            "#messages li.message", "els => els.map(e => Number(e.dataset.seq))")

    async def open_session(self, stack, session_id):
        await self.page.goto(f"{stack.http_url}/sessions/{session_id}/")
        await self.page.wait_for_selector("#status[data-state=live]")

    async def wait_for_message(self, seq):
        await self.page.wait_for_selector(f"#m{seq}", state="attached")


SIGNED_IN = {}  # (stack, username) -> the browser storage state after signing in with the form


async def sign_in(browser, stack, username, viewport=None):
    """A new browser context signed in as ``username``, on the dashboard.

    The first time, through the login form; later, with the cookies it set (password hashing is slow).
    """
    key = (id(stack), username)
    context = await new_context(browser, viewport=viewport or {"width": 1280, "height": 800},
                                storage_state=SIGNED_IN.get(key))
    tab = Tab(await context.new_page())
    if key in SIGNED_IN:
        await tab.page.goto(f"{stack.http_url}/")
    else:
        await tab.page.goto(f"{stack.http_url}/accounts/login/")
        await tab.page.fill("#id_username", username)
        await tab.page.fill("#id_password", PASSWORD)
        await tab.page.click("button[type=submit]")
        await tab.page.wait_for_url(f"{stack.http_url}/")
        SIGNED_IN[key] = await context.storage_state()
    assert await tab.page.text_content(".who") == username + (" staff" if username == "boss" else "")
    return tab


async def say(agent, session_id, content, **kwargs):
    result = await agent.call("add_message", session_id=session_id, content=content, **kwargs)
    assert result["success"], result
    return result


async def test_sign_in_and_open_a_session(site, browser):
    async with await site.agent("planner", "claude") as agent:
        session_id = await new_session(agent, "Open me from the dashboard")
        await say(agent, session_id, "first words", metadata={"step": 1})
        tab = await sign_in(browser, site, "member")
        page = tab.page
        # Static files come from whitenoise under Daphne with DEBUG off.
        assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(245, 246, 248)"
        await page.click(f"tr[data-session-id={session_id}] a")
        await page.wait_for_selector("#status[data-state=live]")
        assert await page.text_content("h1") == "Open me from the dashboard"
        assert await page.text_content("#m1 .content") == "first words"
        assert await page.text_content("#m1 .sender") == "planner"
        assert await page.text_content("#m1 .badge") == "public"
        assert not await page.is_visible("#m1 .metadata pre")
        await page.click("#m1 .metadata summary")
        assert json.loads(await page.text_content("#m1 .metadata pre")) == {"step": 1}
        # Shown in the reader's time zone, not as the server's UTC text.
        assert "UTC" not in await page.text_content("#m1 time")
        assert tab.console_errors == []


async def test_message_added_through_the_sidecar_appears_without_a_refresh(site, browser):
    async with await site.agent("writer", "claude") as agent:
        session_id = await new_session(agent, "Live arrival")
        await say(agent, session_id, "already here")
        tab = await sign_in(browser, site, "member")
        await tab.open_session(site, session_id)
        await tab.page.evaluate("window.notReloaded = true")
        root = await say(agent, session_id, "arrived live")
        await say(agent, session_id, "a live reply", parent_message_id=root["message_id"])
        await tab.wait_for_message(3)
        assert await tab.page.evaluate("window.notReloaded") is True
        assert await tab.page.text_content("#m2 .content") == "arrived live"
        # The reply sits under its parent.
        assert await tab.page.text_content("#m2 > ol.replies > #m3 .content") == "a live reply"
        assert await tab.seqs() == [1, 2, 3]


async def test_markup_in_sender_and_content_renders_as_text_and_runs_nothing(site, browser):
    async with await site.agent("author", "claude") as agent:
        session_id = await new_session(agent, XSS)
        tab = await sign_in(browser, site, "member")
        await tab.open_session(site, session_id)
        # Agent ids cannot hold markup, so this sender is written straight to the database; the next
        # live message makes the page's connection fill the gap from the database.
        site.manage("shell", "-c", (
            "from realtime import operations; "
            f"operations.add_message({session_id!r}, sender={XSS!r}, sender_type={XSS!r}, content={XSS!r})"
        ))
        await say(agent, session_id, XSS)
        await tab.wait_for_message(2)
        for seq in (1, 2):
            assert await tab.page.text_content(f"#m{seq} .content") == XSS
        assert await tab.page.text_content("#m1 .sender") == XSS
        await tab.page.reload()
        await tab.page.wait_for_selector("#status[data-state=live]")
        assert await tab.page.text_content("#m1 .sender") == XSS
        assert await tab.page.text_content("h1") == XSS
        await tab.page.goto(f"{site.http_url}/")
        await tab.page.wait_for_selector("#status[data-state=live]")
        assert await tab.page.locator("img").count() == 0
        assert tab.dialogs == []


async def test_non_staff_never_sees_restricted_content_first_render_or_live(site, browser):
    async with await site.agent("root", "admin") as agent:
        session_id = await new_session(agent, "Mixed audiences")
        for level, content in RESTRICTED.items():
            await say(agent, session_id, f"early {content}", visibility=level)
        await say(agent, session_id, "early public")
        member = await sign_in(browser, site, "member")
        boss = await sign_in(browser, site, "boss")
        for tab in (member, boss):
            await tab.open_session(site, session_id)
        for level, content in RESTRICTED.items():
            await say(agent, session_id, f"late {content}", visibility=level)
        await say(agent, session_id, "late public")
        await member.wait_for_message(8)
        await boss.wait_for_message(8)
        assert await member.seqs() == [4, 8]
        assert await boss.seqs() == list(range(1, 9))
        seen_by_member = await member.page.content() + "".join(member.frames)
        for content in RESTRICTED.values():
            assert content not in seen_by_member
            assert content in await boss.page.content()
        # Resume replay after a reconnect follows the same rule.
        await member.page.reload()
        await member.page.wait_for_selector("#status[data-state=live]")
        assert await member.seqs() == [4, 8]
        first_render = await member.page.content()
        assert not any(content in first_render for content in RESTRICTED.values())


async def test_dashboard_updates_live(site, browser):
    async with await site.agent("dash-writer", "claude") as writer, await site.agent("shadow", "claude") as shadow:
        tab = await sign_in(browser, site, "member")
        await tab.page.wait_for_selector("#status[data-state=live]")
        session_id = await new_session(writer, "Appears on the dashboard by itself")
        await say(writer, session_id, "first")
        row = f"tr[data-session-id={session_id}]"
        await tab.page.wait_for_selector(row)
        assert await tab.page.text_content(f"{row} .purpose a") == "Appears on the dashboard by itself"
        assert await tab.page.text_content(f"{row} .creator") == "dash-writer"
        assert await tab.page.text_content(f"{row} .count") == "1"
        assert await tab.page.eval_on_selector("tbody#session-rows tr", "r => r.dataset.sessionId") == session_id
        await say(shadow, session_id, "not for members", visibility="private")
        await say(writer, session_id, "second public")
        # Two public messages: the private one is not counted.
        await tab.page.wait_for_function(
            "sel => document.querySelector(sel + ' .count').textContent === '2'", arg=row)
        chips = await tab.page.eval_on_selector_all(f"{row} .chip", "els => els.map(e => e.textContent)")
        assert chips == ["dash-writer"]
        assert not any("not for members" in frame for frame in tab.frames)


async def test_auto_scroll_stops_when_reading_above_and_the_marker_jumps_back(site, browser):
    async with await site.agent("chatty", "claude") as agent:
        session_id = await new_session(agent, "Long conversation")
        for n in range(1, 16):
            await say(agent, session_id, f"line {n}\n" * 3)
        tab = await sign_in(browser, site, "member", viewport={"width": 1000, "height": 500})
        await tab.open_session(site, session_id)
        at_bottom = "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 2"
        await tab.page.wait_for_function(at_bottom)
        await say(agent, session_id, "followed")
        await tab.wait_for_message(16)
        await tab.page.wait_for_function(at_bottom)
        assert await tab.page.is_hidden("#jump")
        await tab.page.mouse.move(500, 250)  # over the messages
        for _ in range(3):  # a wheel event can go unhandled while the machine is busy: the reader scrolls again
            await tab.page.mouse.wheel(0, -5000)  # to the top, past the composer too
            with contextlib.suppress(PlaywrightTimeout):
                await tab.page.wait_for_function("() => scrollY === 0", timeout=10_000)
                break
        assert await tab.page.evaluate("scrollY") == 0
        await say(agent, session_id, "while reading above")
        await tab.page.wait_for_selector("#jump", state="visible")
        assert await tab.page.text_content("#jump") == "1 new message ↓"
        assert await tab.page.evaluate("scrollY") == 0
        await tab.page.click("#jump")
        await tab.page.wait_for_function(at_bottom)
        assert await tab.page.is_hidden("#jump")


async def test_presence_shows_who_is_watching(site, browser):
    async with await site.agent("host", "claude") as agent:
        session_id = await new_session(agent, "Who is here")
        member = await sign_in(browser, site, "member")
        boss = await sign_in(browser, site, "boss")
        await member.open_session(site, session_id)
        await boss.open_session(site, session_id)
        watching = ("expected => Array.from(document.querySelectorAll('#presence .chip > span:nth-child(2)'),"
                    " e => e.textContent).join() === expected")
        # Staff see everyone; a member sees themselves and how many others watch.
        await boss.page.wait_for_function(watching, arg="boss,member")
        await member.page.wait_for_function(watching, arg="member")
        others = "expected => (document.querySelector('#presence .chip.others')?.textContent ?? '') === expected"
        await member.page.wait_for_function(others, arg="+ 1 person")
        await boss.page.close()
        await member.page.wait_for_function(others, arg="")
        assert await member.page.text_content("#presence .chip.me .you") == "you"


async def test_no_content_security_policy_violations_on_any_page(site, browser):
    async with await site.agent("csp", "claude") as agent:
        session_id = await new_session(agent, "CSP")
        await say(agent, session_id, "hello", metadata={"k": "v"})
    signed_out = Tab(await (await new_context(browser)).new_page())
    response = await signed_out.page.goto(f"{site.http_url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tab = await sign_in(browser, site, "boss")
    for path in ["/", f"/sessions/{session_id}/", "/memory/", "/admin/", "/admin/realtime/session/",
                 f"/admin/realtime/session/{quote(session_id)}/change/", "/admin/realtime/message/",
                 "/admin/realtime/memoryentry/", "/admin/realtime/auditevent/", "/admin/auth/user/add/"]:
        response = await tab.page.goto(f"{site.http_url}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
    errors = signed_out.console_errors + tab.console_errors
    violations = [text for text in errors if re.search(r"Content Security Policy|Refused to", text)]
    assert violations == []


async def test_page_left_open_through_a_daphne_restart_shows_every_message_once_in_order(site, browser):
    # Last in this module: it restarts the module's Daphne.
    stack = site
    async with await stack.agent("steady", "claude") as agent:
        session_id = await new_session(agent, "Survives a restart")
        for n in (1, 2, 3):
            await say(agent, session_id, f"message {n}")
        tab = await sign_in(browser, stack, "member")
        await tab.open_session(stack, session_id)
        await tab.page.evaluate("""() => {
            window.states = [];
            new MutationObserver(() => window.states.push(document.getElementById("status").dataset.state))
              .observe(document.getElementById("status"), {attributes: true, attributeFilter: ["data-state"]});
        }""")
        stack.stop_daphne()
        await tab.page.wait_for_selector("#status[data-state=reconnecting]")
        for n in (4, 5, 6):
            await say(agent, session_id, f"message {n}")  # stored while Daphne is down
        stack.start_daphne()
        await tab.wait_for_message(6)
        await say(agent, session_id, "message 7")
        await tab.wait_for_message(7)
        await tab.page.wait_for_timeout(500)  # room for any late duplicate to show up
        assert await tab.seqs() == [1, 2, 3, 4, 5, 6, 7]
        contents = await tab.page.eval_on_selector_all("#messages .content.markdown",
                                                       "els => els.map(e => e.textContent)")
        assert contents == [f"message {n}" for n in range(1, 8)]
        states = await tab.page.evaluate("window.states")
        assert "reconnecting" in states and "resumed" in states
        assert states.index("resumed") > states.index("reconnecting")
