"""Bringing a shared-context-server 1.1 SQLite database into this server (``manage.py import_scs PATH``).

Sessions keep their ids (``session_`` + 16 hex, as 1.1 made them) unless one is taken here;
messages get seqs 1, 2, 3 … in their original order (after any a session already has);
memory and the audit log keep their times. Every imported record is noted in
``ImportedRecord``, so a second import brings only what is new. The whole import is one
transaction; a dry run makes it and rolls it back, so its counts are exact.

Nothing is announced message by message: rows go in by batches, and each session's
``announced_seq`` moves with its ``last_seq``, so no publisher or sweeper sends them. Viewers
see them when they open or resume the session (from the database).

Visibility, from 1.1 to here: public, private and admin_only keep their names. agent_only
becomes private unless ``keep_agent_only``: 1.1 documented it as "agents of the sender's type"
but showed it only to its sender (and admins), while here it reaches every agent of that type,
so private keeps the readers it had. Any other level becomes admin_only (the strictest).
The original level, id and message type stay in the message's metadata under ``imported_from``.
"""

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction
from django.db.models import Case, F, When
from django.utils import timezone

from realtime import inbox
from realtime.models import (
    AuditEvent,
    ImportedRecord,
    MemoryEntry,
    Message,
    Session,
    Visibility,
    is_session_id,
    new_session_id,
)

BATCH = 500  # rows per INSERT
COLUMNS = {
    "sessions": {"id", "purpose", "created_by", "metadata", "is_active", "created_at", "updated_at"},
    "messages": {"id", "session_id", "sender", "sender_type", "content", "visibility", "message_type", "metadata",
                 "timestamp", "parent_message_id"},
    "agent_memory": {"id", "agent_id", "session_id", "key", "value", "metadata", "created_at", "updated_at",
                     "expires_at"},
    "audit_log": {"id", "timestamp", "event_type", "agent_id", "session_id", "resource", "action", "result",
                  "metadata"},
}
VISIBILITY = {"public": Visibility.PUBLIC, "private": Visibility.PRIVATE, "admin_only": Visibility.ADMIN_ONLY,
              "agent_only": Visibility.PRIVATE}
STRICTEST = Visibility.ADMIN_ONLY
DEFAULT_SENDER_TYPE = "generic"  # 1.1's own default


class SourceError(Exception):
    """The file is missing or is not a shared-context-server 1.1 database."""


@dataclass
class Counts:
    sessions: int = 0
    messages: int = 0
    memory: int = 0
    audit: int = 0
    skipped: dict = field(default_factory=dict)

    def skip(self, reason, n=1):
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def open_source(path):
    """A read-only connection to the 1.1 database at ``path``; SourceError in one line if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, needed in COLUMNS.items():
            have = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")} if table in tables else set()
            if not needed <= have:
                lacking = f"no table {table}" if not have else f"{table} lacks {', '.join(sorted(needed - have))}"
                raise SourceError(f"{path} is not a shared-context-server 1.1 database ({lacking})")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise SourceError(f"{path} is not a SQLite database ({exc})") from None
    except SourceError:
        db.close()
        raise
    return db


def parse_time(value):
    """1.1 wrote Unix seconds (REAL), ISO 8601 text or SQLite's ``YYYY-MM-DD HH:MM:SS`` (UTC); None if empty."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError):
        pass
    moment = datetime.fromisoformat(str(value).strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def json_value(text, default):
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def json_object(text):
    value = json_value(text, {})
    return value if isinstance(value, dict) else {"value": value}


@contextlib.contextmanager
def original_times():
    """Let bulk inserts keep the times they are given (auto_now/auto_now_add would overwrite them)."""
    fields = [model._meta.get_field(name) for model, name in (
        (Session, "created_at"), (Session, "updated_at"), (Message, "timestamp"), (MemoryEntry, "created_at"),
        (MemoryEntry, "updated_at"), (AuditEvent, "timestamp"))]
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for f in fields:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def imported(kind, prefix=""):
    """``{original: local_id}`` of the records of ``kind`` imported before (whose original starts with ``prefix``)."""
    records = ImportedRecord.objects.filter(kind=kind, original__startswith=prefix)
    return dict(records.values_list("original", "local_id"))


def note(kind, pairs):
    ImportedRecord.objects.bulk_create(
        [ImportedRecord(kind=kind, original=original, local_id=str(local)) for original, local in pairs],
        batch_size=BATCH)


def import_sessions(db, counts, now):
    """Import the sessions not imported before; ``{original id: local id}`` of every imported session."""
    known = imported("session")
    rows = [row for row in db.execute("SELECT * FROM sessions ORDER BY created_at, id") if row["id"] not in known]
    taken = set(Session.objects.filter(pk__in=[row["id"] for row in rows]).values_list("pk", flat=True))
    new, pairs = [], []
    for row in rows:
        local = row["id"] if is_session_id(row["id"]) and row["id"] not in taken else new_session_id()
        created = parse_time(row["created_at"]) or now
        new.append(Session(
            id=local, purpose=row["purpose"] or "(imported)", created_by=(row["created_by"] or "")[:100],
            metadata=json_object(row["metadata"]), is_active=bool(row["is_active"]),
            created_at=created, updated_at=parse_time(row["updated_at"]) or created,
        ))
        pairs.append((row["id"], local))
    Session.objects.bulk_create(new, batch_size=BATCH)
    note("session", pairs)
    counts.sessions += len(new)
    return {**known, **dict(pairs)}


def message_from(row, local_session, seq, keep_agent_only, now):
    level = row["visibility"] or "public"
    visibility = Visibility.AGENT_ONLY if keep_agent_only and level == "agent_only" else VISIBILITY.get(
        level, STRICTEST)
    metadata = json_object(row["metadata"])
    metadata["imported_from"] = {"message_id": row["id"], "visibility": level, "message_type": row["message_type"]}
    return Message(
        session_id=local_session, seq=seq, sender=(row["sender"] or "unknown")[:100],
        sender_type=(row["sender_type"] or DEFAULT_SENDER_TYPE)[:50], content=row["content"] or "",
        visibility=visibility, metadata=metadata, timestamp=parse_time(row["timestamp"]) or now,
    )


def import_session_messages(local_session, rows, keep_agent_only, counts, now):
    """Append ``rows`` (one source session's messages, in id order) not imported before; set their parents."""
    original_session = rows[0]["session_id"]
    known = imported("message", f"{original_session}/")
    rows = [row for row in rows if f"{original_session}/{row['id']}" not in known]
    if not rows:
        return
    last = Session.objects.filter(pk=local_session).values_list("last_seq", flat=True).get()
    new = [message_from(row, local_session, last + n, keep_agent_only, now) for n, row in enumerate(rows, start=1)]
    Message.objects.bulk_create(new, batch_size=BATCH)
    for message in new:  # the inbox of each agent a message mentions, as if it had been posted here
        inbox.store(message)
    ids = {**{int(k.rpartition("/")[2]): int(v) for k, v in known.items()},
           **{row["id"]: message.pk for row, message in zip(rows, new, strict=True)}}
    replies = []
    for row, message in zip(rows, new, strict=True):
        parent = ids.get(row["parent_message_id"])
        if parent is not None:
            message.parent_id = parent
            replies.append(message)
    Message.objects.bulk_update(replies, ["parent_id"], batch_size=BATCH)
    note("message", ((f"{original_session}/{row['id']}", m.pk) for row, m in zip(rows, new, strict=True)))
    newest = last + len(new)
    # Announced along with the import when the session was up to date: nothing is sent for these rows.
    Session.objects.filter(pk=local_session).update(
        last_seq=newest,
        announced_seq=Case(When(announced_seq__gte=last, then=newest), default=F("announced_seq"),
                           output_field=Session._meta.get_field("announced_seq")),
    )
    counts.messages += len(new)


def import_messages(db, sessions, keep_agent_only, counts, now):
    batch, current = [], None
    for row in db.execute("SELECT * FROM messages ORDER BY session_id, id"):
        if row["session_id"] != current and batch:
            import_session_messages(sessions[current], batch, keep_agent_only, counts, now)
            batch = []
        current = row["session_id"]
        if current not in sessions:
            counts.skip("messages of no session")
            continue
        batch.append(row)
    if batch:
        import_session_messages(sessions[current], batch, keep_agent_only, counts, now)


def import_memory(db, sessions, counts, now):
    rows = list(db.execute("SELECT * FROM agent_memory ORDER BY id"))
    originals = {f"{row['id']}:{row['agent_id']}:{row['key']}": row for row in rows}
    known = imported("memory")
    new, pairs = [], []
    for original, row in originals.items():
        if original in known:
            continue
        expires = parse_time(row["expires_at"])
        if expires is not None and expires <= now:
            counts.skip("expired memory entries")
            continue
        session = sessions.get(row["session_id"]) if row["session_id"] else None
        if row["session_id"] and session is None:
            counts.skip("memory entries of no session")
            continue
        agent_id = (row["agent_id"] or "")[:100]
        if MemoryEntry.objects.filter(agent_id=agent_id, session_id=session, key=row["key"]).exists():
            counts.skip("memory entries already set here")
            continue
        created = parse_time(row["created_at"]) or now
        new.append(MemoryEntry(
            agent_id=agent_id, key=row["key"][:255], session_id=session, value=json_value(row["value"], None),
            metadata=json_object(row["metadata"]), created_at=created,
            updated_at=parse_time(row["updated_at"]) or created, expires_at=expires,
        ))
        pairs.append(original)
    MemoryEntry.objects.bulk_create(new, batch_size=BATCH)
    note("memory", ((original, entry.pk) for original, entry in zip(pairs, new, strict=True)))
    counts.memory += len(new)


def import_audit(db, sessions, counts, now):
    rows = list(db.execute("SELECT * FROM audit_log ORDER BY id"))
    originals = {f"{row['id']}:{row['timestamp']}:{row['event_type']}": row for row in rows}
    known = imported("audit")
    new = []
    for original, row in originals.items():
        if original in known:
            continue
        detail = json_object(row["metadata"])
        detail.update({name: row[name] for name in ("resource", "action", "result") if row[name] is not None})
        detail["imported_from"] = {"audit_id": row["id"]}
        session = sessions.get(row["session_id"], row["session_id"] or "")
        new.append((original, AuditEvent(
            event_type=(row["event_type"] or "")[:50], agent_id=(row["agent_id"] or "")[:100], session_id=session[:24],
            detail=detail, timestamp=parse_time(row["timestamp"]) or now,
        )))
    AuditEvent.objects.bulk_create([event for _, event in new], batch_size=BATCH)
    note("audit", ((original, event.pk) for original, event in new))
    counts.audit += len(new)


def run(path, *, dry_run=False, keep_agent_only=False):
    """Import the 1.1 database at ``path``; its Counts. ``dry_run`` counts and changes nothing."""
    counts, now = Counts(), timezone.now()
    with contextlib.closing(open_source(path)) as db, original_times(), transaction.atomic():
        sessions = import_sessions(db, counts, now)
        import_messages(db, sessions, keep_agent_only, counts, now)
        import_memory(db, sessions, counts, now)
        import_audit(db, sessions, counts, now)
        if dry_run:
            transaction.set_rollback(True)
    return counts
