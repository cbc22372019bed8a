"""Domain operations on sessions and messages, shared by the sidecar, the UI and host code.

Each takes already-typed arguments, enforces the limits, and raises
``OperationError`` with a stable code and a hint. Storing a message numbers it
and stores the mentions it makes (``realtime.inbox``) inside its transaction, and
hands it to the publisher (``realtime.publisher``) only once that transaction has
committed, so nothing that was rolled back is ever broadcast. Messages that this
process's threads store at the same time share one transaction (``realtime.group_commit``).
"""

import collections
import functools
import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone

from realtime import audit, conf, inbox, publisher, read_cursors, reads
from realtime.envelope import message_event
from realtime.errors import ErrorCode, OperationError
from realtime.group_commit import GroupCommit
from realtime.models import AuditEvent, Message, Session, Visibility, is_session_id
from realtime.visibility import Viewer, visible_q

logger = logging.getLogger(__name__)


def check_session_id(session_id):
    if not is_session_id(session_id):
        raise OperationError(
            ErrorCode.INVALID_SESSION_ID,
            "session_id is not a valid session id",
            "Session ids look like 'session_' followed by 16 hex characters, as create_session returns them.",
        )


def check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise OperationError(ErrorCode.INVALID_METADATA, "metadata must be a JSON object",
                             "Pass an object, e.g. {\"k\": 1}.")
    limit = conf.get("SCS_MAX_METADATA_BYTES")
    try:
        encoded = json.dumps(metadata, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise OperationError(
            ErrorCode.INVALID_METADATA, "metadata must be plain JSON (no NaN or Infinity)", "Use finite numbers."
        ) from None
    if len(encoded) > limit:
        raise OperationError(ErrorCode.METADATA_TOO_LARGE, f"metadata is larger than {limit} bytes",
                             "Store less metadata.")
    return metadata


def check_session_quota(created_by):
    """SESSION_QUOTA_EXCEEDED when ``created_by`` created ``SCS_MAX_SESSIONS_PER_HOUR`` in the last hour.

    Counted from the audit log's session_created events (indexed by agent id), so
    it holds across processes; a rolling hour rather than a total, since agents
    cannot delete sessions.
    """
    quota = conf.get("SCS_MAX_SESSIONS_PER_HOUR")
    since = timezone.now() - timedelta(hours=1)
    created = AuditEvent.objects.filter(event_type="session_created", agent_id=created_by, timestamp__gte=since)
    if created.count() >= quota:
        raise OperationError(
            ErrorCode.SESSION_QUOTA_EXCEEDED, f"{created_by} created {quota} sessions in the last hour",
            "Reuse a session you created (pass its session_id), or try again later.",
        )


def check_purpose(purpose):
    """``purpose`` stripped; INVALID_PURPOSE when empty or longer than ``SCS_MAX_PURPOSE_LENGTH``."""
    purpose = (purpose or "").strip()
    limit = conf.get("SCS_MAX_PURPOSE_LENGTH")
    if not purpose:
        raise OperationError(
            ErrorCode.INVALID_PURPOSE, "purpose must not be empty", "Say in a sentence what the session is for."
        )
    if len(purpose) > limit:
        raise OperationError(ErrorCode.INVALID_PURPOSE, f"purpose is longer than {limit} characters",
                             "Shorten the purpose.")
    return purpose


def create_session(purpose, created_by, metadata=None):
    purpose = check_purpose(purpose)
    metadata = check_metadata(metadata)
    check_session_quota(created_by)
    with transaction.atomic():
        session = Session.objects.create(purpose=purpose, created_by=created_by, metadata=metadata)
        audit.record("session_created", created_by, session.id, purpose=purpose[:200])
    return session


def get_session(session_id):
    check_session_id(session_id)
    try:
        return Session.objects.get(pk=session_id)
    except Session.DoesNotExist:
        raise OperationError(
            ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}", "Check the id, or create one with create_session."
        ) from None


# SQLite has one writer at a time and its busy handler naps 1-100 ms between retries, which
# starves some of many writer threads; this process's writers queue on a lock instead. Reentrant: a thread
# that holds its turn may write again (the publisher marking what it sent, realtime.announce).
_sqlite_writers = threading.RLock()


class WriterTurn:
    """This thread's turn to write, held for a ``with`` block; ``done`` ends it early (idempotent)."""

    def __init__(self, lock):
        self.lock = lock
        self.held = False

    def __enter__(self):
        if self.lock is not None:
            self.lock.acquire()
            self.held = True
        return self

    def done(self):
        if self.held:
            self.held = False
            self.lock.release()

    def __exit__(self, *exc_info):
        self.done()


def sqlite_writer_turn():
    """This thread's turn to write (SQLite, outside a transaction); a no-op elsewhere."""
    return WriterTurn(_sqlite_writers if connection.vendor == "sqlite" and not connection.in_atomic_block else None)


NEXT_SEQ_SQL = (
    'UPDATE {table} SET "last_seq" = "last_seq" + %s, "updated_at" = %s '
    'WHERE "id" = %s AND "is_active" = %s RETURNING "last_seq"'
)


def next_seq(session_id, now, count=1):
    """Take the next ``count`` seqs of an active session (one statement); the last of them, or None when there
    is no such active session."""
    if connection.vendor in ("sqlite", "postgresql") and connection.features.can_return_columns_from_insert:
        # UPDATE ... RETURNING (SQLite >= 3.35, PostgreSQL): one statement instead of UPDATE then SELECT,
        # and no ORM compiling; ~0.4 ms less CPU per message.
        with connection.cursor() as cursor:
            cursor.execute(
                NEXT_SEQ_SQL.format(table=connection.ops.quote_name(Session._meta.db_table)),
                [count, connection.ops.adapt_datetimefield_value(now), session_id, True],
            )
            row = cursor.fetchone()
        return row[0] if row else None
    if not Session.objects.filter(pk=session_id, is_active=True).update(
        last_seq=F("last_seq") + count, updated_at=now,
    ):
        return None
    return Session.objects.filter(pk=session_id).values_list("last_seq", flat=True).get()


def committed(turn, message):
    """The after-commit hook of a message stored in a caller's transaction: end this thread's writer turn,
    publish the message, then tell host receivers.

    Other writers of the process go on while the publisher sends (network I/O in a shell or a worker).
    """
    turn.done()
    publisher.committed(message_event(message))
    publisher.tell_receivers(message)


@dataclass(frozen=True)
class NewMessage:
    """A message to store, its arguments checked."""

    session_id: str
    sender: str
    sender_type: str
    content: str
    visibility: str
    metadata: dict
    parent_message_id: int | None

    def row(self, seq):
        return Message(  # its timestamp is set as it is inserted (auto_now_add)
            session_id=self.session_id, seq=seq, sender=self.sender, sender_type=self.sender_type,
            content=self.content, visibility=self.visibility, metadata=self.metadata,
            parent_id=self.parent_message_id,
        )


def add_message(session_id, *, sender, sender_type, content, visibility=Visibility.PUBLIC, metadata=None,
                parent_message_id=None, may_write_admin_only=False):
    """Store a message with the session's next seq; return the Message.

    Inside a caller's transaction it is stored in that transaction. Otherwise the messages that this
    process's threads store at the same time share one transaction (``realtime.group_commit``).
    """
    check_session_id(session_id)
    if visibility not in Visibility.values:
        raise OperationError(
            ErrorCode.INVALID_VISIBILITY, f"visibility must be one of {', '.join(Visibility.values)}",
            "Use 'public' unless the message must be hidden from some readers.",
        )
    if visibility == Visibility.ADMIN_ONLY and not may_write_admin_only:
        raise OperationError(
            ErrorCode.PERMISSION_DENIED, "admin_only messages need the admin permission",
            "Use another visibility, or authenticate as an agent type that holds 'admin'.",
        )
    if not isinstance(content, str) or not content.strip():
        raise OperationError(ErrorCode.INVALID_CONTENT, "content must be a non-empty string", "Send some text.")
    limit = conf.get("SCS_MAX_CONTENT_LENGTH")
    if len(content) > limit:
        raise OperationError(
            ErrorCode.CONTENT_TOO_LARGE, f"content is longer than {limit} characters", "Split it into several messages."
        )
    new = NewMessage(session_id, sender, sender_type, content, visibility, check_metadata(metadata),
                     parent_message_id)
    if connection.in_atomic_block:
        return _store_one(new, publish=True)
    message = message_writes.submit(new)  # committed and published
    publisher.tell_receivers(message)
    return message


def _store_one(new, *, publish):
    """Store one message in a transaction of its own (or the caller's); with ``publish``, publish it once
    committed."""
    with sqlite_writer_turn() as turn, transaction.atomic():
        if new.parent_message_id is not None and not Message.objects.filter(
            pk=new.parent_message_id, session_id=new.session_id
        ).exists():
            raise OperationError(
                ErrorCode.PARENT_NOT_FOUND, f"message {new.parent_message_id} is not in session {new.session_id}",
                "parent_message_id must be the id of a message in the same session.",
            )
        now = timezone.now()
        seq = next_seq(new.session_id, now)
        if seq is None:
            get_session(new.session_id)  # raises SESSION_NOT_FOUND when absent
            raise OperationError(
                ErrorCode.SESSION_CLOSED, f"session {new.session_id} is closed",
                "It takes no new messages until staff reopen it; create_session for new work.",
            )
        message = new.row(seq)
        message.save(force_insert=True)
        _stored([message])
        if publish:
            transaction.on_commit(functools.partial(committed, turn, message), robust=True)
    return message


class _WriteApart(Exception):
    """A message of the batch would fail: each is stored alone, and that one fails with its own error."""


class _CommitFailed(Exception):
    """The commit itself failed: it may have happened, so storing the messages again could store them twice."""


def _store_together(batch):
    """Store the NewMessages of ``batch`` in one transaction: one seq statement per session, one insert.

    Rows are locked in one order by every writer (sessions, then inboxes, each by id), so two
    transactions never wait on each other (PostgreSQL; SQLite has one writer at a time).
    """
    written = False
    try:
        with sqlite_writer_turn(), transaction.atomic():
            parents = {new.parent_message_id for new in batch if new.parent_message_id is not None}
            if parents:
                sessions_of = dict(Message.objects.filter(pk__in=parents).values_list("pk", "session_id"))
                if any(new.parent_message_id is not None and sessions_of.get(new.parent_message_id) != new.session_id
                       for new in batch):
                    raise _WriteApart
            now = timezone.now()
            places = collections.defaultdict(list)  # session id -> positions in batch, in order
            for position, new in enumerate(batch):
                places[new.session_id].append(position)
            seqs = [0] * len(batch)
            for session_id in sorted(places):
                positions = places[session_id]
                last = next_seq(session_id, now, len(positions))
                if last is None:
                    raise _WriteApart  # closed or gone
                for seq, position in enumerate(positions, start=last - len(positions) + 1):
                    seqs[position] = seq
            rows = [new.row(seq) for new, seq in zip(batch, seqs, strict=True)]
            if connection.features.can_return_rows_from_bulk_insert:
                messages = Message.objects.bulk_create(rows)
            else:
                messages = rows
                for message in messages:
                    message.save(force_insert=True)
            _stored(messages)
            written = True
    except Exception as exc:
        if written:
            raise _CommitFailed from exc
        raise
    return messages


def _stored(messages):
    """What storing ``messages`` brings in their transaction: their mentions, an audit entry for each admin_only."""
    inbox.store_many(messages)
    for message in messages:
        if message.visibility == Visibility.ADMIN_ONLY:
            audit.record("admin_only_message", message.sender, message.session_id, message_id=message.id)


def _outcome(store, new):
    try:
        return store(new)
    except Exception as exc:  # noqa: BLE001 - raised in the thread that submitted this message
        return exc


def store_messages(batch):
    """``realtime.group_commit``'s writer: each message's Message (committed), or the error its thread raises.

    Together in one transaction where they can be; else each alone, so a message that fails (a closed
    session, a parent elsewhere, a database error) fails with its own error and the others are stored.
    Not again after a commit that failed: that error is raised, and each message's thread raises it.
    """
    if len(batch) > 1:
        try:
            return _store_together(batch)
        except _WriteApart:
            pass
        except _CommitFailed as failed:
            raise failed.__cause__ from None
        except Exception:  # noqa: BLE001 - e.g. a database error: each message meets it (or not) alone
            logger.warning("storing %d messages together failed; storing each alone", len(batch), exc_info=True)
    return [_outcome(functools.partial(_store_one, publish=False), new) for new in batch]


def _publish_batch(outcomes):
    """After a batch committed: publish its messages, in the order they were stored (in seq order). Host
    receivers are told on each message's own thread (``add_message``)."""
    for outcome in outcomes:
        if isinstance(outcome, Message):
            try:
                publisher.committed(message_event(outcome))
            except Exception:  # as Django's robust on_commit hooks: the next message is still published
                logger.exception("publishing message %s of %s failed", outcome.seq, outcome.session_id)


# Every message this process stores outside a caller's transaction; .batches and .items count what it wrote.
message_writes = GroupCommit(store_messages, after_batch=_publish_batch)


def check_offset(offset, hint="Page with since_seq instead: pass the seq of the last message you have."):
    max_offset = conf.get("SCS_MAX_OFFSET")
    if not 0 <= offset <= max_offset:
        raise OperationError(ErrorCode.OFFSET_TOO_LARGE, f"offset must be between 0 and {max_offset}", hint)


def list_sessions(viewer: Viewer, *, include_closed=False, limit=50, offset=0):
    """Sessions newest activity first, each with the viewer's ``read_seq`` and ``unread``; ``(sessions, has_more)``.

    Every agent that may read may read every session (visibility applies to messages); one query.
    """
    check_offset(offset, "Sessions past that are the least recently active; leave closed ones out.")
    sessions = Session.objects.all() if include_closed else Session.objects.filter(is_active=True)
    sessions = read_cursors.with_unread(sessions, viewer).order_by("-updated_at", "-pk")
    page = list(sessions[offset : offset + limit + 1])
    return page[:limit], len(page) > limit


def visible_messages(viewer: Viewer, session_id):
    """The queryset of messages in ``session_id`` that ``viewer`` may read, in seq order."""
    return Message.objects.filter(session_id=session_id).filter(visible_q(viewer)).order_by("seq")


THREAD_SQL = (
    "WITH RECURSIVE thread(id, depth) AS ("
    " SELECT id, 0 FROM {table} WHERE id = %s AND session_id = %s"
    " UNION"
    " SELECT m.id, thread.depth + 1 FROM {table} m JOIN thread ON m.parent_id = thread.id"
    " WHERE m.session_id = %s AND thread.depth < %s"
    ") SELECT id FROM thread LIMIT %s"
)


def thread_ids(session_id, root_id, limit=1000):
    """A subquery: ids of ``root_id`` and every reply below it (at most ``limit``, ``limit`` levels deep).

    One recursive query (SQLite and PostgreSQL) instead of one query per level;
    the depth bound ends it even if an edit made a cycle.
    """
    sql = THREAD_SQL.format(table=connection.ops.quote_name(Message._meta.db_table))
    return RawSQL(sql, [root_id, session_id, session_id, limit, limit])  # noqa: S611 - values are bound parameters


def list_messages(viewer: Viewer, session_id, *, limit=50, offset=0, visibility_filter=None, since_seq=None,
                  thread_id=None):
    """A page of visible messages in seq order within the read budget; returns ``(messages, has_more)``."""
    check_offset(offset)
    get_session(session_id)
    queryset = filtered_messages(viewer, session_id, visibility_filter=visibility_filter, since_seq=since_seq,
                                 thread_id=thread_id)
    return reads.page(queryset, limit, offset=offset)


def count_messages(viewer: Viewer, session_id, **filters):
    """How many messages ``list_messages`` would page through with these filters (one COUNT)."""
    return filtered_messages(viewer, session_id, **filters).count()


def filtered_messages(viewer: Viewer, session_id, *, visibility_filter=None, since_seq=None, thread_id=None):
    """The visible messages of ``session_id`` within the filters of ``list_messages``, in seq order."""
    queryset = visible_messages(viewer, session_id)
    if visibility_filter is not None:
        if visibility_filter not in Visibility.values:
            raise OperationError(
                ErrorCode.INVALID_VISIBILITY, f"visibility_filter must be one of {', '.join(Visibility.values)}",
                "Leave it out to get every level you may read.",
            )
        queryset = queryset.filter(visibility=visibility_filter)
    if since_seq is not None:
        queryset = queryset.filter(seq__gt=since_seq)
    if thread_id is not None:
        queryset = queryset.filter(pk__in=thread_ids(session_id, thread_id))
    return queryset
