"""Read cursors: how far each agent has read each session, kept by the server.

An agent's cursor in a session is the seq of the last message it marked read (0: none).
``mark`` only ever moves it forward, and never past the session's newest message. What
is "unread" for an agent is the messages after its cursor that it may see and did not
send (``get_messages(unread_only=true)``, ``list_sessions``' unread counts, the default
of ``get_inbox``). ``mark_async`` is what a waiting tool calls with the cursor of the
batch it returns (``wait_for_messages(mark_read=true)``).
"""

from channels.db import DatabaseSyncToAsync
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from realtime import operations  # a module, not names: operations -> inbox -> read_cursors -> operations
from realtime.errors import ErrorCode, OperationError
from realtime.models import Message, ReadCursor
from realtime.visibility import visible_q


def read_seq(agent_id, session_id):
    """The agent's cursor in the session (0 when it never marked anything read there)."""
    return ReadCursor.objects.filter(agent_id=agent_id, session_id=session_id).values_list(
        "seq", flat=True).first() or 0


def read_seq_of(agent_id, session_ref="pk"):
    """A subquery: the agent's cursor in the session ``session_ref`` names in the outer query (None if none)."""
    return ReadCursor.objects.filter(agent_id=agent_id, session_id=OuterRef(session_ref)).values("seq")[:1]


def mark(agent_id, session_id, seq):
    """Move the agent's cursor in the session forward to ``seq``; return the cursor (which may be further on).

    SESSION_NOT_FOUND / INVALID_SESSION_ID for a wrong session; INVALID_ARGUMENT for a seq
    past the session's newest message. A seq at or behind the cursor changes nothing.
    """
    last = operations.get_session(session_id).last_seq
    if not 0 <= seq <= last:
        raise OperationError(
            ErrorCode.INVALID_ARGUMENT, f"seq must be between 0 and {last}, the newest message of {session_id}",
            f"Mark a seq you read (at most {last}): last_seq of wait_for_messages, or a message's seq.",
        )
    if seq == 0:
        return read_seq(agent_id, session_id)
    mine = ReadCursor.objects.filter(agent_id=agent_id, session_id=session_id)
    with operations.sqlite_writer_turn(), transaction.atomic():
        if mine.filter(seq__lt=seq).update(seq=seq, updated_at=timezone.now()):
            return seq  # the row stays locked to the commit: nobody moved it further meanwhile
        cursor, created = ReadCursor.objects.get_or_create(agent_id=agent_id, session_id=session_id,
                                                          defaults={"seq": seq})
        if created or cursor.seq >= seq:
            return cursor.seq
        # Created by a concurrent mark between the two statements, behind this one.
        mine.filter(seq__lt=seq).update(seq=seq, updated_at=timezone.now())
        return seq


mark_async = DatabaseSyncToAsync(mark, thread_sensitive=False)


def with_unread(sessions, viewer):
    """``sessions`` annotated with the viewer's ``read_seq`` and ``unread``: the messages after it that the
    viewer may see and did not send. Two subqueries in the one query, whatever the number of sessions."""
    counted = (Message.objects.filter(session_id=OuterRef("pk"), seq__gt=OuterRef("read_seq"))
               .filter(visible_q(viewer)).exclude(sender=viewer.id)
               .order_by().values("session_id").annotate(n=Count("pk")).values("n"))
    return (sessions.annotate(read_seq=Coalesce(Subquery(read_seq_of(viewer.id)), 0))
            .annotate(unread=Coalesce(Subquery(counted), 0)))
