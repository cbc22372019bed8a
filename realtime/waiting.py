"""Following a session from a cursor: what ``wait_for_messages`` returns and what a watch pushes.

A ``Follower`` holds an agent's cursor in one session and a ``realtime.wake`` waiter.
``next`` returns the messages after the cursor that the agent may see (not its own,
unless ``include_own``), waiting for them when there are none yet, and moves the
cursor past everything it examined: the messages it returns and those it passed
over (hidden from the agent, or its own). So a cursor handed back to the next call
never skips a message nor shows one twice.

The database is read first, and again whenever the waiter went stale or the events
handed over leave a gap in seqs; otherwise the events themselves (the envelopes the
publisher sent, which carry each message whole) are the answer, with no query.
"""

import asyncio
import json
from dataclasses import dataclass

from channels.db import DatabaseSyncToAsync

from realtime import operations, reads
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError
from realtime.models import Session
from realtime.visibility import Viewer, can_see_message


@dataclass
class Batch:
    records: list  # message records (envelope data plus seq), in seq order
    last_seq: int  # the cursor for the next call
    timed_out: bool


def session_last_seq(session_id):
    """The session's newest seq; SESSION_NOT_FOUND when there is no such session."""
    last = Session.objects.filter(pk=session_id).values_list("last_seq", flat=True).first()
    if last is None:
        operations.get_session(session_id)  # raises the one SESSION_NOT_FOUND error (or INVALID_SESSION_ID)
    return last


def check_cursor(session_id, cursor):
    """The session's newest seq, once ``cursor`` was checked against it."""
    last = session_last_seq(session_id)
    if cursor > last:
        raise OperationError(
            ErrorCode.INVALID_ARGUMENT, f"since_seq {cursor} is past the newest message of {session_id} (seq {last})",
            f"Pass a seq you were given (last_seq of the previous call), at most {last}; 0 for the start.",
        )
    return last


def read_after(viewer: Viewer, session_id, cursor, limit, include_own):
    """From the database: ``(records, cursor)`` after ``cursor``, within ``limit`` and the read budget."""
    # The newest seq is read before the messages: every seq up to it was committed (a seq is taken and its
    # message stored in one transaction, in seq order), so the page below examined all of them.
    newest = check_cursor(session_id, cursor)  # a cursor never passes the newest seq: a client's may
    queryset = operations.visible_messages(viewer, session_id).filter(seq__gt=cursor)
    if not include_own:
        queryset = queryset.exclude(sender=viewer.id)
    messages, has_more = reads.page(queryset, limit)
    if has_more:
        return [message_record(m) for m in messages], messages[-1].seq
    return [message_record(m) for m in messages], max(newest, cursor, messages[-1].seq if messages else 0)


def record_size(record):
    content = record["content"]
    return reads.ROW_OVERHEAD + len(content.encode()) + len(json.dumps(record["metadata"], separators=(",", ":")))


class Follower:
    """An agent's cursor in one session, fed by a ``realtime.wake`` waiter of that session."""

    def __init__(self, viewer: Viewer, session_id, cursor, waiter, *, include_own=False, limit=50):
        self.viewer = viewer
        self.session_id = session_id
        self.cursor = cursor
        self.waiter = waiter
        self.include_own = include_own
        self.limit = limit
        self.stale = True  # read the database first
        self.pending = {}  # seq -> event handed over, not yet examined

    def _shown(self, data):
        return can_see_message(self.viewer, data) and (self.include_own or data["sender"] != self.viewer.id)

    def _from_events(self):
        """``records`` from the contiguous run of pending events after the cursor; marks stale on a gap."""
        for seq in [seq for seq in self.pending if seq <= self.cursor]:
            del self.pending[seq]
        records, total, budget = [], 0, reads.budget()
        while self.cursor + 1 in self.pending:
            event = self.pending[self.cursor + 1]
            if self._shown(event["data"]):
                record = {**event["data"], "seq": event["seq"]}
                size = record_size(record)
                if len(records) == self.limit or (records and total + size > budget):
                    break
                records.append(record)
                total += size
            del self.pending[self.cursor + 1]
            self.cursor += 1
        if self.pending and not records and min(self.pending) > self.cursor + 1:
            self.stale = True  # a seq we were not handed: the database has it
        return records

    async def next(self, within):
        """The next ``Batch``: at once if there are messages to show, else when one comes or after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self.waiter.check()
            if self.stale:
                self.stale = False
                self.waiter.take()  # what was handed over so far is in the database
                self.pending.clear()
                records, self.cursor = await DatabaseSyncToAsync(read_after, thread_sensitive=False)(
                    self.viewer, self.session_id, self.cursor, self.limit, self.include_own)
                self.waiter.saw(self.cursor)
            else:
                records = self._from_events()
                if self.stale:
                    continue
            if records:
                return Batch(records, self.cursor, False)
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.waiter.wait(remaining):
                return Batch([], self.cursor, True)
            events, stale = self.waiter.take()
            self.stale = stale
            for event in events:
                if event["seq"] > self.cursor:
                    self.pending[event["seq"]] = event
