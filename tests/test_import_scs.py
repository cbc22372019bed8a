"""``manage.py import_scs``: a database written by the real shared-context-server 1.1.10 (tests/fixtures).

The fixture was made by ``python -m tests.fixtures.make_scs_fixture``, which drives the pinned
peer through its own MCP tools. What it holds is read here with sqlite3, so the expectations
do not come from the importer they check.
"""

import contextlib
import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from realtime import memory, operations, publisher
from realtime.models import AuditEvent, MemoryEntry, Message, Session
from realtime.visibility import Viewer

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "scs-1.1.10.sqlite3"


def source(sql):
    with contextlib.closing(sqlite3.connect(FIXTURE)) as db:
        return db.execute(sql).fetchall()


def run(*args):
    out = io.StringIO()
    call_command("import_scs", str(FIXTURE), *args, stdout=out)
    return out.getvalue()


def live_memory_rows():
    now = datetime.now(UTC).timestamp()
    return [row for row in source("SELECT agent_id, session_id, key, expires_at FROM agent_memory")
            if row[3] is None or float(row[3]) > now]


def test_the_fixture_is_small_and_was_written_by_1_1():
    assert FIXTURE.stat().st_size < 200 * 1024
    assert source("SELECT max(version) FROM schema_version")[0][0] >= 3
    assert {row[0] for row in source("SELECT visibility FROM messages")} == {
        "public", "private", "agent_only", "admin_only"}


def test_everything_is_imported_with_its_ids_order_and_times():
    out = run()
    sessions = source("SELECT id, purpose, created_by FROM sessions")
    messages = source("SELECT id, session_id, sender, sender_type, content, timestamp FROM messages ORDER BY id")
    audit = source("SELECT count(*) FROM audit_log")[0][0]
    assert f"{len(sessions)} sessions, {len(messages)} messages" in out
    assert Session.objects.count() == len(sessions) and Message.objects.count() == len(messages)
    assert AuditEvent.objects.filter(detail__has_key="imported_from").count() == audit
    for session_id, purpose, created_by in sessions:  # 1.1's ids are kept: prompts that name them still work
        session = Session.objects.get(pk=session_id)
        assert (session.purpose, session.created_by) == (purpose, created_by)
        originals = [m for m in messages if m[1] == session_id]
        stored = list(Message.objects.filter(session=session).order_by("seq"))
        assert [m.seq for m in stored] == list(range(1, len(originals) + 1))
        assert [(m.sender, m.sender_type, m.content) for m in stored] == [o[2:5] for o in originals]
        assert [m.metadata["imported_from"]["message_id"] for m in stored] == [o[0] for o in originals]
        assert stored[0].timestamp == datetime.fromtimestamp(float(originals[0][5]), UTC)
        # Announced with the import: neither the publisher nor the sweeper sends these rows.
        assert session.last_seq == session.announced_seq == len(originals)
    assert Session.objects.get(pk=sessions[0][0]).metadata == {"project": "storage", "phase": "design"}


def test_the_import_publishes_nothing(monkeypatch):
    sent = []
    monkeypatch.setattr(publisher, "committed", sent.append)
    run()
    assert Message.objects.exists() and sent == []


def test_visibility_is_mapped_so_no_one_reads_more_than_in_1_1():
    run()
    by_original = {m.metadata["imported_from"]["message_id"]: m for m in Message.objects.all()}
    for original_id, level in source("SELECT id, visibility FROM messages"):
        expected = "private" if level == "agent_only" else level
        assert by_original[original_id].visibility == expected
    session = source("SELECT session_id FROM messages WHERE visibility = 'agent_only'")[0][0]
    bob = Viewer.for_agent("bob", "claude", ["read"])  # same type as alice: 1.1 did not show him her agent_only
    seen = {m.content for m in operations.visible_messages(bob, session)}
    hidden = source("SELECT content FROM messages WHERE visibility = 'agent_only' AND sender = 'alice'")[0][0]
    assert hidden not in seen


def test_keep_agent_only_keeps_the_level():
    run("--keep-agent-only")
    assert Message.objects.filter(visibility="agent_only").count() == source(
        "SELECT count(*) FROM messages WHERE visibility = 'agent_only'")[0][0]


def test_threads_keep_their_parents():
    run()
    local = {m.metadata["imported_from"]["message_id"]: m for m in Message.objects.all()}
    replies = source("SELECT id, parent_message_id FROM messages WHERE parent_message_id IS NOT NULL")
    assert len(replies) >= 2
    for original_id, parent in replies:
        assert local[original_id].parent_id == local[parent].pk
    root = min(parent for _, parent in replies)
    admin = Viewer.for_agent("root", "admin", ["read", "write", "admin"])
    thread, _ = operations.list_messages(admin, local[root].session_id, thread_id=local[root].pk)
    depth_two = [m for m in thread if m.parent_id and m.parent_id != local[root].pk]
    assert len(thread) >= 3 and depth_two  # a reply to a reply is in the thread


def test_memory_keeps_scope_and_expiry_and_expired_entries_stay_out():
    out = run()
    expected = live_memory_rows()
    total = source("SELECT count(*) FROM agent_memory")[0][0]
    assert len(expected) < total  # the fixture has an entry that has expired since
    assert f"{total - len(expected)} expired memory entries" in out
    stored = {(e.agent_id, e.session_id, e.key): e for e in MemoryEntry.objects.all()}
    assert set(stored) == {(agent, session, key) for agent, session, key, _ in expected}
    for agent, session, key, expires in expected:
        entry = stored[(agent, session, key)]
        assert entry.expires_at == (None if expires is None else datetime.fromtimestamp(float(expires), UTC))
    assert memory.get_memory("alice", "preferences").value == {"style": "terse"}


def test_a_second_import_adds_nothing_and_a_new_message_only_once():
    run()
    counts = (Session.objects.count(), Message.objects.count(), MemoryEntry.objects.count(),
              AuditEvent.objects.count())
    assert "0 sessions, 0 messages, 0 memory entries, 0 audit events" in run()
    assert (Session.objects.count(), Message.objects.count(), MemoryEntry.objects.count(),
            AuditEvent.objects.count()) == counts


def test_a_message_added_in_1_1_after_an_import_comes_next_and_only_once(tmp_path):
    copy = tmp_path / "later.sqlite3"
    copy.write_bytes(FIXTURE.read_bytes())
    with contextlib.closing(sqlite3.connect(copy)) as db, db:
        session_id, parent = db.execute("SELECT session_id, max(id) FROM messages GROUP BY session_id").fetchone()
        db.execute("INSERT INTO messages (session_id, sender, sender_type, content, visibility, parent_message_id)"
                   " VALUES (?, 'bob', 'claude', 'written after the first import', 'public', ?)",
                   (session_id, parent))
    call_command("import_scs", str(FIXTURE), stdout=io.StringIO())
    before = Session.objects.get(pk=session_id).last_seq
    for _ in range(2):
        call_command("import_scs", str(copy), stdout=io.StringIO())
    [late] = Message.objects.filter(content="written after the first import")
    assert late.seq == before + 1 and late.parent.metadata["imported_from"]["message_id"] == parent


def test_dry_run_counts_and_changes_nothing():
    out = run("--dry-run")
    assert out.startswith("Would import") and f"{source('SELECT count(*) FROM messages')[0][0]} messages" in out
    assert not Session.objects.exists() and not Message.objects.exists() and not AuditEvent.objects.exists()


def test_a_database_of_another_schema_is_a_one_line_error(tmp_path):
    other = tmp_path / "other.sqlite3"
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE sessions (id TEXT)")
    for path, says in ((other, "not a shared-context-server 1.1 database"), (tmp_path / "none.db", "no such file"),
                       (Path(__file__), "not a SQLite database")):
        with pytest.raises(CommandError) as caught:
            call_command("import_scs", str(path))
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_mentions_in_imported_messages_reach_the_inbox(tmp_path):
    from realtime import inbox

    copy = tmp_path / "mentions.sqlite3"
    copy.write_bytes(FIXTURE.read_bytes())
    with contextlib.closing(sqlite3.connect(copy)) as db, db:
        session_id = db.execute("SELECT session_id FROM messages LIMIT 1").fetchone()[0]
        for visibility in ("public", "private"):
            db.execute("INSERT INTO messages (session_id, sender, sender_type, content, visibility)"
                       " VALUES (?, 'bob', 'claude', ?, ?)", (session_id, f"@carol a {visibility} note", visibility))
    call_command("import_scs", str(copy), stdout=io.StringIO())
    carol = Viewer.for_agent("carol", "claude", ("read",))
    page = inbox.read(carol, 0, 50)
    assert [record["content"] for record in page.records] == ["@carol a public note"]
