"""One renderer: a message looks the same on first render and live; nothing in it runs; memory is live for staff.

Real Daphne and sidecar processes (``tests.stack``); agents write through MCP; the pages
are watched in one headless Chromium for the whole module. Pages are opened with the
Content-Security-Policy bypassed, so that only the sanitizer stands between a payload
and a dialog.
"""

import json

import pytest
import pytest_asyncio
import websockets

from tests.browser import require_chromium
from tests.helpers import new_session, say, succeeded
from tests.stack import Stack
from tests.xss_payloads import PAYLOADS

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The markup of #messages, without what only says how a message arrived (the "fresh" highlight).
MESSAGES_HTML = """() => {
  const copy = document.getElementById("messages").cloneNode(true);
  copy.querySelectorAll(".fresh").forEach((el) => el.classList.remove("fresh"));
  return copy.innerHTML;
}"""
# Anything in the page that could run: on* attributes, and script URLs in links or sources.
ACTIVE_PARTS = """() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attribute of el.attributes) {
      const value = attribute.value.trim().toLowerCase();
      if (attribute.name.startsWith("on")) found.push(el.tagName + " " + attribute.name);
      if (["href", "src", "action", "formaction", "xlink:href"].includes(attribute.name)
          && /^(javascript|vbscript|data):/.test(value)) found.push(el.tagName + " " + attribute.name + "=" + value);
    }
  }
  return found;
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_chromium()
    running = Stack(tmp_path_factory.mktemp("render")).start()
    try:
        running.cookies = {"boss": running.signed_in("boss", staff=True), "member": running.signed_in("member")}
        yield running
    finally:
        running.stop()


class Tab:
    """A signed-in page (CSP bypassed) and the dialogs it opened."""

    def __init__(self, context, page):
        self.context, self.page, self.dialogs = context, page, []
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def open(self, url):
        await self.page.goto(url)
        if await self.page.locator("#status").count():
            await self.page.wait_for_selector("#status[data-state=live]")

    async def reload(self):
        await self.page.reload()
        await self.page.wait_for_selector("#status[data-state=live]")

    async def wait_for_message(self, seq):
        await self.page.wait_for_selector(f"#m{seq}", state="attached")


@pytest_asyncio.fixture(loop_scope="module")
async def tabs(browser, stack):
    """``open(username)``: a new signed-in Tab; every context is closed after the test."""
    contexts = []

    async def open_tab(username):
        context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        await context.add_cookies([{"name": "sessionid", "value": stack.cookies[username], "url": stack.http_url}])
        return Tab(context, await context.new_page())

    yield open_tab
    for context in contexts:
        await context.close()


async def test_first_render_and_live_render_build_the_same_html(stack, tabs):
    async with await stack.agent("author", "admin") as agent:
        session_id = await new_session(agent, "Same HTML twice")
        url = f"{stack.http_url}/sessions/{session_id}/"
        boss, member = await tabs("boss"), await tabs("member")
        for tab in (boss, member):
            await tab.open(url)
        root = await say(agent, session_id, "# Plan\n\n**Bold**, *em*, `code` and [a link](https://example.com)",
                         metadata={"step": 1})
        hidden = await say(agent, session_id, "a private note", visibility="private",
                           parent_message_id=root["message_id"])
        await say(agent, session_id, "```python\nprint('agents only')\n```", visibility="agent_only",
                  parent_message_id=root["message_id"])
        await say(agent, session_id, "for admins", visibility="admin_only")
        # Under its private parent for staff; at the top level, "reply to an earlier message", for a member.
        await say(agent, session_id, "a reply to the private note", parent_message_id=hidden["message_id"])
        parent = root
        for depth in range(1, 7):  # deeper than the page nests (4): the last ones sit under the deepest shown
            parent = await say(agent, session_id, f"depth {depth}", parent_message_id=parent["message_id"])
        last = await say(agent, session_id, "| a | b |\n|:-|-:|\n| 1 | 2 |\n\n- one\n- two", metadata={"k": [1]})
        live = {}
        for name, tab in (("boss", boss), ("member", member)):
            await tab.wait_for_message(last["seq"])
            live[name] = await tab.page.evaluate(MESSAGES_HTML)
        # Threading as the rule says, on the live page.
        assert await boss.page.locator("#m1 > ol.replies > #m2 > ol.replies > #m5").count() == 1
        assert await member.page.locator("#messages > #m5 .reply-to").is_visible()
        assert not await boss.page.locator("#m5 .reply-to").is_visible()
        # #m9 is 4 deep: its reply #m10, and #m10's reply #m11, sit beside it under #m8.
        assert await boss.page.locator("#m7 > ol.replies > #m8 > ol.replies > #m9").count() == 1
        assert await boss.page.locator("#m8 > ol.replies > #m10 + #m11").count() == 1
        assert await boss.page.locator("#m9 > ol.replies, #m10 > ol.replies").count() == 0
        assert await member.page.locator("#m2, #m3, #m4").count() == 0
        for name, tab in (("boss", boss), ("member", member)):
            await tab.reload()
            first = await tab.page.evaluate(MESSAGES_HTML)
            assert first == live[name], name
            assert tab.dialogs == []
        assert 'class="badge badge-admin_only"' in live["boss"] and "badge-admin_only" not in live["member"]
        assert '<pre class="highlight"><code><span class="nb">print</span>' in live["boss"]
        assert '<th class="align-left">a</th>' in live["member"]


async def test_xss_payloads_stay_inert_on_first_render_and_live(stack, tabs):
    assert len(PAYLOADS) >= 50
    async with await stack.agent("attacker", "claude", ("read", "write")) as agent:
        session_id = await new_session(agent, "Payloads")
        tab = await tabs("boss")
        await tab.open(f"{stack.http_url}/sessions/{session_id}/")
        for payload in PAYLOADS:
            await say(agent, session_id, payload)
        for arrival in ("live", "first render"):
            await tab.wait_for_message(len(PAYLOADS))
            assert await tab.page.locator("#messages li.message").count() == len(PAYLOADS), arrival
            await tab.page.locator(".content.markdown").evaluate_all("els => els.forEach(el => el.scrollIntoView())")
            await tab.page.mouse.move(300, 300)
            assert await tab.page.evaluate(ACTIVE_PARTS) == [], arrival
            assert await tab.page.locator("#messages script, #messages iframe, #messages svg, #messages img").count() \
                == 0, arrival
            assert tab.dialogs == [], arrival
            # The text as written is still there, one click away.
            await tab.page.click("#plain-toggle")
            assert await tab.page.text_content("#m1 .content.plain") == PAYLOADS[0]
            assert await tab.page.is_visible("#m1 .content.plain")
            await tab.page.click("#plain-toggle")
            if arrival == "live":
                await tab.reload()


def memory_row(key):
    return f"#memory-rows tr.memory-entry:has(td:nth-child(2) code:text-is('{key}'))"


async def test_memory_tab_and_memory_page_follow_set_overwrite_delete_and_expiry(stack, tabs):
    async with await stack.agent("keeper", "claude", ("read", "write")) as agent:
        session_id = await new_session(agent, "Remembering")
        succeeded(await agent.call("set_memory", key="before", value={"n": 0}, session_id=session_id))
        tab, page = await tabs("boss"), await tabs("boss")
        await tab.open(f"{stack.http_url}/sessions/{session_id}/")
        await page.open(f"{stack.http_url}/memory/?agent=keeper")
        await tab.page.click("#tab-memory")
        assert await tab.page.is_visible(memory_row("before")) and not await tab.page.is_visible("#messages")
        assert await tab.page.text_content("#memory-count") == "1"

        succeeded(await agent.call("set_memory", key="plan", value={"step": 1}, session_id=session_id))
        for shown in (tab, page):
            await shown.page.wait_for_selector(memory_row("plan"))
        assert await tab.page.text_content("#memory-count") == "2"
        # A live row takes its place in the listing's order (agent, session, key), as a reload would show it.
        succeeded(await agent.call("set_memory", key="alpha", value=1, session_id=session_id))
        await tab.page.wait_for_selector(memory_row("alpha"))
        keys = "rows => rows.map(r => r.querySelector('td:nth-child(2) code').textContent)"
        assert await tab.page.eval_on_selector_all("#memory-rows tr", keys) == ["alpha", "before", "plan"]
        succeeded(await agent.call("delete_memory", key="alpha", session_id=session_id))
        await tab.page.wait_for_selector(memory_row("alpha"), state="detached")
        succeeded(await agent.call("set_memory", key="plan", value={"step": 2}, session_id=session_id))
        for shown in (tab, page):
            await shown.page.locator(memory_row("plan")).filter(has_text='"step": 2').wait_for()
            assert await shown.page.locator(memory_row("plan")).count() == 1
        succeeded(await agent.call("delete_memory", key="plan", session_id=session_id))
        for shown in (tab, page):
            await shown.page.wait_for_selector(memory_row("plan"), state="detached")
        assert await tab.page.text_content("#memory-count") == "1"

        # Global entries: on the memory page, not in the session's tab. An entry that lapses goes from both.
        succeeded(await agent.call("set_memory", key="everywhere", value="global"))
        succeeded(await agent.call("set_memory", key="brief", value="soon gone", session_id=session_id,
                                   expires_in=2))
        for shown in (tab, page):
            await shown.page.wait_for_selector(memory_row("brief"))
        await page.page.wait_for_selector(memory_row("everywhere"))
        assert await tab.page.locator(memory_row("everywhere")).count() == 0
        for shown in (tab, page):
            await shown.page.wait_for_selector(memory_row("brief"), state="detached", timeout=30_000)
        # What a reload shows is what the live page showed.
        live_rows = await tab.page.eval_on_selector_all("#memory-rows tr", "rows => rows.map(r => r.id)")
        await tab.reload()
        assert await tab.page.eval_on_selector_all("#memory-rows tr", "rows => rows.map(r => r.id)") == live_rows
        assert tab.dialogs == [] and page.dialogs == []


async def test_memory_never_reaches_a_non_staff_page_or_an_agent_socket(stack):
    secret_value = "memory-value-only-staff-may-see"
    async with await stack.agent("owner", "admin") as agent:
        session_id = await new_session(agent, "Memory stays with staff")
        staff = await stack.watcher(session_id, cookie=stack.cookies["boss"]).connect()
        member = await stack.watcher(session_id, cookie=stack.cookies["member"]).connect()
        agent_socket = await stack.watcher(session_id, token=agent.token).connect()
        for watcher in (staff, member, agent_socket):
            await watcher.wait(lambda w: w.caught_up)
        succeeded(await agent.call("set_memory", key="k", value=secret_value, session_id=session_id))
        succeeded(await agent.call("set_memory", key="k", value=[secret_value, 2], session_id=session_id))
        succeeded(await agent.call("delete_memory", key="k", session_id=session_id))
        await staff.wait(lambda w: [f["action"] for f in w.frames if f["type"] == "memory"] == ["set", "set", "delete"])
        assert secret_value in json.dumps(staff.frames)  # the staff page does get it
        await say(agent, session_id, "after the memory writes")
        for watcher in (member, agent_socket):
            await watcher.wait(lambda w: w.seqs == [1])
            assert [f for f in watcher.frames if f["type"] == "memory"] == []
            assert secret_value not in json.dumps(watcher.frames)
        # Agents get the plain envelope; pages get it with its html.
        assert set(agent_socket.messages[0]) == {"type", "session_id", "seq", "data"}
        assert set(member.messages[0]) == {"type", "session_id", "seq", "data", "html"}
        for watcher in (staff, member, agent_socket):
            await watcher.close()

        # The memory page's socket admits staff users only.
        url = f"ws://127.0.0.1:{stack.ws_port}/ws/memory/"
        for headers in ({"Cookie": f"sessionid={stack.cookies['member']}"}, {"Authorization": f"Bearer {agent.token}"}):
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(url, origin=stack.origin, additional_headers=headers) as refused:
                    await refused.recv()
        async with websockets.connect(url, origin=stack.origin,
                                      additional_headers={"Cookie": f"sessionid={stack.cookies['boss']}"}) as page:
            succeeded(await agent.call("set_memory", key="global-note", value=secret_value))
            frame = json.loads(await page.recv())
            assert frame["type"] == "memory" and frame["action"] == "set" and "global-note" in frame["html"]


async def test_older_messages_load_with_the_same_fragments_and_threading(stack, tabs):
    async with await stack.agent("archivist", "claude", ("read", "write")) as agent:
        session_id = await new_session(agent, "A long session")
        stack.shell(
            "from realtime import operations\n"
            f"def say(content, parent=None): return operations.add_message({session_id!r}, sender='archivist', "
            "sender_type='claude', content=content, parent_message_id=parent)\n"
            "root = say('# root')\n"
            "say('*reply*', root.id)\n"
            "for n in range(3, 204):\n"
            "    say(f'm{n}', root.id if n == 5 else None)\n"
        )
        tab = await tabs("member")
        await tab.open(f"{stack.http_url}/sessions/{session_id}/")
        assert await tab.page.locator("#m3").count() == 0
        assert await tab.page.locator("#messages > #m5 .reply-to").is_visible()  # its parent is not on the page
        await tab.page.click("#load-earlier")
        await tab.wait_for_message(1)
        assert await tab.page.locator("#messages > #m1 > ol.replies > #m2 .content.markdown em").count() == 1
        seqs = await tab.page.eval_on_selector_all("#messages li.message", "els => els.map(e => Number(e.dataset.seq))")
        assert seqs[:5] == [1, 2, 3, 4, 5]
        assert await tab.page.locator("#load-earlier").count() == 0
