"""Screenshots of the dashboard and a session page for the README.

``python -m tests.screenshots`` starts a throw-away stack, writes a few realistic
sessions (and some agents' memory) through the MCP sidecar, signs in with headless
Chromium and saves ``docs/screenshots/``: ``dashboard.png``, ``session.png``,
``markdown.png`` (one message's Markdown), ``composer.png`` (a person writing in the session) and
``memory-tab.png`` (the session's memory tab).
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from tests.browser import CHROMIUM, launch_options
from tests.stack import ROOT, Stack

OUT = ROOT / "docs" / "screenshots"
USER, PASSWORD = "operator", "screenshots-only-password"

SESSIONS = [
    ("Migrate the payments service to PostgreSQL 16", "planner"),
    ("Triage flaky integration tests in CI", "qa-lead"),
    ("Draft the Q3 release notes", "writer"),
    ("Investigate p99 latency spike on /checkout", "sre-bot"),
    ("Review the new rate limiter design", "reviewer"),
]


async def seed(stack):
    planner = await stack.agent("planner", "claude")
    db = await stack.agent("db-agent", "gemini")
    reviewer = await stack.agent("reviewer", "claude")
    ops = await stack.agent("ops-bot", "system")
    agents = {"planner": planner, "db-agent": db, "reviewer": reviewer, "ops-bot": ops,
              "qa-lead": reviewer, "writer": planner, "sre-bot": ops}
    try:
        ids = {}
        for purpose, creator in reversed(SESSIONS):
            result = await agents[creator].call("create_session", purpose=purpose)
            ids[purpose] = result["session_id"]
            if creator != "planner":
                await agents[creator].call("add_message", session_id=result["session_id"],
                                           content=f"Starting: {purpose.lower()}.")
        main = ids[SESSIONS[0][0]]

        async def say(agent, content, **kwargs):
            result = await agent.call("add_message", session_id=main, content=content, **kwargs)
            assert result["success"], result
            return result["message_id"]

        plan = await say(planner, "**Plan for the migration:**\n\n1. Dump the schema and compare types\n"
                                  "2. Dry-run `pg_upgrade` on a snapshot\n3. Switch reads, then writes, behind a flag",
                         metadata={"step": "plan", "estimate_hours": 6})
        await say(db, "Schema dump done: 42 tables, 3 use the deprecated money type.", parent_message_id=plan,
                  metadata={"tables": 42, "needs_attention": ["invoices", "refunds", "payouts"]})
        await say(reviewer, "Convert money to numeric(12,2) before the upgrade, not after.", parent_message_id=plan)
        await say(db, "Snapshot restored on staging-pg16; pg_upgrade --check passes.", visibility="agent_only")
        await say(ops, "Maintenance window approved for Saturday 02:00 UTC.", visibility="admin_only")
        await say(db, "Conversion for the three tables, checked on staging:\n\n```sql\n"
                      "ALTER TABLE invoices ALTER COLUMN amount TYPE numeric(12,2) USING amount::numeric;\n"
                      "ALTER TABLE refunds  ALTER COLUMN amount TYPE numeric(12,2) USING amount::numeric;\n"
                      "ALTER TABLE payouts  ALTER COLUMN amount TYPE numeric(12,2) USING amount::numeric;\n```\n\n"
                      "| table | rows | time |\n|:--|--:|--:|\n| invoices | 1,204,331 | 41 s |\n"
                      "| refunds | 88,120 | 3 s |\n| payouts | 402,877 | 12 s |\n\n"
                      "Details in the [runbook](https://example.com/runbook).")
        await say(planner, "Next: switch reads on staging and watch error rates for an hour.")
        for agent, key, value, extra in [
            (planner, "plan/current-step", {"step": 3, "title": "switch reads"}, {}),
            (db, "staging/snapshot", {"host": "staging-pg16", "taken": "02:10 UTC"}, {"expires_in": 86_400}),
            (reviewer, "review/open-questions", ["money → numeric before upgrade?"], {}),
        ]:
            stored = await agent.call("set_memory", key=key, value=value, session_id=main, **extra)
            assert stored["success"], stored
        await reviewer.call("add_message", session_id=ids[SESSIONS[4][0]],
                            content="Token bucket per client looks right.")
        return main, db.token
    finally:
        for agent in {id(a): a for a in agents.values()}.values():
            await agent.close()


async def main():
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="scs-shots-") as data:
        stack = Stack(data).start()
        try:
            stack.manage("shell", "-c", "from django.contrib.auth.models import User; "
                         f"User.objects.create_superuser({USER!r}, '', {PASSWORD!r})")
            session_id, watcher_token = await seed(stack)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(**launch_options())
                page = await browser.new_page(viewport={"width": 1280, "height": 760}, device_scale_factor=1)
                await page.goto(f"{stack.http_url}/accounts/login/")
                await page.fill("#id_username", USER)
                await page.fill("#id_password", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#status[data-state=live]")
                await page.screenshot(path=str(OUT / "dashboard.png"))
                async with stack.watcher(session_id, token=watcher_token) as agent_view:  # shows up in presence
                    await agent_view.wait(lambda w: any(f["type"] == "caught_up" for f in w.frames))
                    await page.goto(f"{stack.http_url}/sessions/{session_id}/")
                    await page.wait_for_selector("#status[data-state=live]")
                    await page.wait_for_selector("#presence .chip.agent")
                    await page.click("#m2 .metadata summary")
                    await page.evaluate("window.scrollTo(0, 0)")
                    await page.screenshot(path=str(OUT / "session.png"), full_page=True)
                    await page.locator("#m6").screenshot(path=str(OUT / "markdown.png"))
                    # A person answers: one message sent from the composer, then a reply being written.
                    await page.fill("#composer-content", "Go ahead with staging; I'll watch the dashboards.")
                    await page.press("#composer-content", "Enter")
                    await page.wait_for_selector("#m8")
                    await page.click("#m6 button.reply")
                    await page.fill("#composer-content", "Please run the **refunds** conversion first: it is the "
                                                         "smallest.")
                    await page.locator("#m8").scroll_into_view_if_needed()
                    await page.screenshot(path=str(OUT / "composer.png"))
                    await page.click("#tab-memory")
                    await page.screenshot(path=str(OUT / "memory-tab.png"))
                await browser.close()
        finally:
            stack.stop()
    print(f"wrote dashboard.png, session.png, markdown.png, composer.png and memory-tab.png in {OUT}")


if __name__ == "__main__":
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
