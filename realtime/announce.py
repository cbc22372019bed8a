"""Nothing committed stays unannounced: the ``Session.announced_seq`` cursor and the sweep over it.

A message is *announced* once a publisher strategy accepted it (Daphne answered
202, or the channel layer's group_send returned). The publisher then records
that with ``mark`` (``announced_seq = N where announced_seq < N``). A session
whose ``last_seq`` is above its ``announced_seq`` has something no viewer was
told about: its process died before sending (SIGKILL), the queue dropped it, or
Daphne refused it.

``unannounced`` finds such sessions whose last message is older than
``SCS_ANNOUNCE_GRACE`` (so live sends are not duplicated), a bounded batch per
call, through the partial index ``session_unannounced`` (only those sessions are
in it): start-up and steady-state work stay small whatever the size of the
database, and no query ever scans messages. ``newest_events`` reads each one's
newest message (one query). Announcing that one is enough: a viewer that lacks
earlier seqs fills the hole from the database (``realtime.live.consumers``).

Several sweepers (several sidecars, several Daphne processes) need no claim:
a duplicate is harmless, since viewers drop seqs they already have.
"""

import functools
import operator
from datetime import timedelta

from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from realtime.envelope import message_event
from realtime.models import Message, Session

SWEEP_BATCH = 100  # sessions announced per sweep, at most


def mark(cursors):
    """Record ``{session_id: seq}`` as announced, in one UPDATE; a cursor never moves back."""
    if not cursors:
        return 0
    newer = functools.reduce(operator.or_, (Q(pk=session_id, announced_seq__lt=seq)
                                            for session_id, seq in cursors.items()))
    seqs = Case(*(When(pk=session_id, then=Value(seq)) for session_id, seq in cursors.items()),
                default=F("announced_seq"), output_field=Session._meta.get_field("announced_seq"))
    from realtime.operations import sqlite_writer_turn  # not at import: operations imports the publisher, and it this

    with sqlite_writer_turn():  # this process's writers queue on one lock rather than SQLite's busy handler
        # QuerySet.update leaves updated_at (auto_now) alone: announcing is not activity.
        return Session.objects.filter(newer).update(announced_seq=seqs)


def unannounced_query(grace, limit=SWEEP_BATCH):
    """``(session_id, last_seq)`` of sessions with unannounced messages, quiet for ``grace`` seconds, oldest first."""
    cutoff = timezone.now() - timedelta(seconds=grace)
    return (Session.objects.filter(last_seq__gt=F("announced_seq"), updated_at__lt=cutoff)
            .order_by("updated_at").values_list("id", "last_seq")[:limit])


def unannounced(grace, limit=SWEEP_BATCH):
    return list(unannounced_query(grace, limit))


def newest_events(sessions):
    """The envelope of each session's newest message, for ``[(session_id, last_seq)]``, in one query."""
    if not sessions:
        return []
    wanted = functools.reduce(operator.or_, (Q(session_id=session_id, seq=seq) for session_id, seq in sessions))
    return [message_event(message) for message in Message.objects.filter(wanted)]


def sweep(grace, limit=SWEEP_BATCH):
    """One sweep's work: the events to announce, and the cursors to mark for sessions whose newest message is gone."""
    sessions = unannounced(grace, limit)
    events = newest_events(sessions)
    found = {event["session_id"] for event in events}
    gone = {session_id: seq for session_id, seq in sessions if session_id not in found}
    mark(gone)  # e.g. its newest message deleted in the admin: nothing to announce
    return events
