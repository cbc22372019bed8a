"""People in sessions, in headless Chromium against real Daphne and sidecar processes.

A person creates a session and posts from the page; a second browser and an agent's WebSocket get it
live; staff close the session from the page and another process reopens it; exports hold what the page shows.
"""

import json
import re

import pytest

from realtime.models import Visibility
from tests.helpers import eventually, new_session, say
from tests.test_browser import SIGNED_IN, Tab, close_contexts, new_context, sign_in, site  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="module")

RESTRICTED = {"private": "PRIVATE-CONTENT", "agent_only": "AGENT-ONLY-CONTENT", "admin_only": "ADMIN-ONLY-CONTENT"}


async def levels(tab):
    return await tab.page.eval_on_selector_all("#composer select[name=visibility] option", "os => os.map(o => o.value)")


async def send(tab, text):
    """Type ``text`` in the composer (``\\n`` as Shift+Enter) and press Enter."""
    box = tab.page.locator("#composer textarea[name=content]")
    lines = text.split("\n")
    await box.type(lines[0])
    for line in lines[1:]:
        await box.press("Shift+Enter")
        await box.type(line)
    await box.press("Enter")


async def forged_post(tab, session_id, **fields):
    """A POST from the page's own script with its CSRF token (what a person could do from the console)."""
    return await tab.page.evaluate("""([url, fields]) => {
        const body = new FormData(document.getElementById("composer"));
        for (const [k, v] of Object.entries(fields)) body.set(k, v);
        return fetch(url, {method: "POST", body, headers: {Accept: "application/json"}})
          .then(r => r.json().then(b => ({status: r.status, body: b})));
    }""", [f"/sessions/{session_id}/post", fields])


async def test_a_person_posts_and_replies_and_a_second_browser_and_an_agent_get_it_live(site, browser):  # noqa: F811
    member = await sign_in(browser, site, "member")
    await member.page.fill("#new-purpose", "Talk it over")
    await member.page.click("#new-session button[type=submit]")
    await member.page.wait_for_selector("#status[data-state=live]")
    session_id = re.search(r"/sessions/(session_[0-9a-f]{16})/", member.page.url).group(1)
    assert await member.page.text_content("h1") == "Talk it over"
    async with await site.agent("helper", "claude") as agent, site.watcher(session_id, token=agent.token) as watcher:
        await watcher.wait_caught_up()
        await say(agent, session_id, "an agent's question")
        await member.wait_for_message(1)
        boss = await sign_in(browser, site, "boss")
        await boss.open_session(site, session_id)
        assert await levels(member) == ["public"]
        assert await levels(boss) == list(Visibility.values)

        await send(member, "first line\nsecond line")
        await member.wait_for_message(2)
        assert await member.page.text_content("#m2 .sender") == "member"
        assert await member.page.text_content("#m2 .type") == "human"
        assert await member.page.text_content("#m2 .content") == "first line\nsecond line"
        assert await member.page.input_value("#composer textarea") == ""
        await boss.wait_for_message(2)
        await watcher.wait_for_seq(2)
        assert watcher.messages[-1]["data"]["sender"] == "member"
        assert watcher.messages[-1]["data"]["content"] == "first line\nsecond line"
        # Its own live frame came too, and did not show it twice.
        await eventually(lambda: any('"type":"new_message"' in f and '"seq":2,' in f for f in member.frames),
                         what="the page's own live frame")
        assert await member.seqs() == [1, 2]

        await member.page.click("#m1 button.reply")
        assert await member.page.is_visible("#replying")
        await send(member, "a reply to the question")
        for tab in (member, boss):
            await tab.page.wait_for_selector("#m1 > ol.replies > #m3", state="attached")
            assert await tab.page.text_content("#m1 > ol.replies > #m3 .content") == "a reply to the question"
        assert await member.page.is_hidden("#replying")
        await watcher.wait_for_seq(3)
        assert watcher.messages[-1]["data"]["parent_message_id"] == watcher.messages[0]["data"]["id"]

        # Not offered, and refused when forged: nothing stored.
        forged = await forged_post(member, session_id, content="forged", visibility="agent_only")
        assert forged["status"] == 403 and forged["body"]["code"] == "PERMISSION_DENIED"
        # A refusal shows inline and keeps the text.
        await member.page.fill("#composer textarea", "x" * 100_001)
        await member.page.press("#composer textarea", "Enter")
        await member.page.wait_for_selector("#composer-error:not([hidden])")
        assert "longer than" in await member.page.text_content("#composer-error")
        assert len(await member.page.input_value("#composer textarea")) == 100_001
        assert (await agent.call("get_messages", session_id=session_id))["count"] == 3
        assert await member.seqs() == [1, 3, 2] and await boss.seqs() == [1, 3, 2]  # the reply sits under #1
        # The browser logs the refused requests (403, 413); no script error.
        errors = member.console_errors + boss.console_errors
        assert [text for text in errors if not text.startswith("Failed to load resource")] == []


async def test_staff_close_the_session_live_posts_are_refused_and_another_process_reopens_it(site, browser):  # noqa: F811
    async with await site.agent("closer", "claude") as agent:
        session_id = await new_session(agent, "Closing time")
        await say(agent, session_id, "before closing")
        member = await sign_in(browser, site, "member")
        await member.open_session(site, session_id)
        await member.page.evaluate("window.notReloaded = true")
        dashboard = await sign_in(browser, site, "member")
        await dashboard.page.goto(f"{site.http_url}/?state=open")
        await dashboard.page.wait_for_selector("#status[data-state=live]")
        row = f"tr[data-session-id={session_id}]"
        assert await dashboard.page.is_visible(row)
        boss = await sign_in(browser, site, "boss")
        await boss.open_session(site, session_id)

        await boss.page.click("#close-form button")
        await boss.page.wait_for_selector("#closed-badge:not([hidden])")
        await member.page.wait_for_selector("#closed-badge:not([hidden])")
        assert await member.page.is_disabled("#composer textarea")
        assert await member.page.is_visible("#composer-closed")
        await dashboard.page.wait_for_selector(row, state="detached")  # no longer open
        assert await member.page.evaluate("window.notReloaded") is True

        refused = await agent.call("add_message", session_id=session_id, content="too late")
        assert refused["success"] is False and refused["code"] == "SESSION_CLOSED"
        forged = await forged_post(member, session_id, content="too late from a person")
        assert forged["status"] == 409 and forged["body"]["code"] == "SESSION_CLOSED"
        closed_list = await sign_in(browser, site, "member")
        await closed_list.page.goto(f"{site.http_url}/?state=closed")
        assert await closed_list.page.is_visible(f"{row} .badge-closed")

        # Reopened from another process (an operator's shell): the page follows through the publisher.
        site.shell(f"from realtime import session_state; session_state.reopen({session_id!r}, by='operator')")
        await member.page.wait_for_selector("#closed-badge", state="hidden")
        assert await member.page.is_enabled("#composer textarea")
        await send(member, "open again")
        await member.wait_for_message(2)
        assert (await agent.call("add_message", session_id=session_id, content="me too"))["seq"] == 3
        await member.wait_for_message(3)
        await boss.wait_for_message(3)
        assert await member.seqs() == [1, 2, 3]


def seqs_in_markdown(text):
    return [int(seq) for seq in re.findall(r"^### #(\d+) ", text, re.MULTILINE)]


async def test_exports_hold_exactly_what_the_page_shows(site, browser, tmp_path):  # noqa: F811
    async with await site.agent("root", "admin") as agent:
        session_id = await new_session(agent, "Export me")
        root = await say(agent, session_id, "public root", metadata={"k": "v"})
        for level, content in RESTRICTED.items():
            await say(agent, session_id, content, visibility=level)
        await say(agent, session_id, "public reply", parent_message_id=root["message_id"])
    for name, expected in (("member", [1, 5]), ("boss", [1, 2, 3, 4, 5])):
        tab = await sign_in(browser, site, name)
        await tab.open_session(site, session_id)
        assert sorted(await tab.seqs()) == expected  # the page nests #5 under #1
        async with tab.page.expect_download() as download:
            await tab.page.click("text=Export JSON")
        exported = json.loads((await (await download.value).path()).read_text())
        assert [m["seq"] for m in exported["messages"]] == expected
        markdown = await (await tab.page.request.get(f"{site.http_url}/sessions/{session_id}/export.md")).text()
        assert seqs_in_markdown(markdown) == expected
        if name == "member":
            assert not any(content in markdown + json.dumps(exported) for content in RESTRICTED.values())
    everything = site.manage("export_session", session_id, "--format", "json").stdout
    assert [m["seq"] for m in json.loads(everything)["messages"]] == [1, 2, 3, 4, 5]
    target = tmp_path / "export.md"
    site.manage("export_session", session_id, "--output", str(target))
    assert seqs_in_markdown(target.read_text()) == [1, 2, 3, 4, 5]


async def test_without_script_the_composer_is_a_plain_form(site, browser):  # noqa: F811
    async with await site.agent("plain", "claude") as agent:
        session_id = await new_session(agent, "No script")
        await say(agent, session_id, "hello")
        await sign_in(browser, site, "member")  # the signed-in cookies, kept for the next context
        context = await new_context(browser, java_script_enabled=False, storage_state=SIGNED_IN[(id(site), "member")])
        tab = Tab(await context.new_page())
        await tab.page.goto(f"{site.http_url}/sessions/{session_id}/")
        await tab.page.fill("#composer textarea[name=content]", "posted by a plain form")
        await tab.page.click("#composer button:has-text('Send')")
        await tab.page.wait_for_url(f"{site.http_url}/sessions/{session_id}/#m2")
        assert await tab.page.text_content("#m2 .content") == "posted by a plain form"
        assert await tab.page.text_content("#m2 .sender") == "member"
        listed = await agent.call("get_messages", session_id=session_id)
        assert [m["sender_type"] for m in listed["messages"]] == ["claude", "human"]
