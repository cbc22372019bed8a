"""Waking the agents that wait: one hub per process, told of every message event the process hears of.

An agent blocked in ``wait_for_messages``, in ``get_inbox(wait=...)`` or watching a
session holds a ``Waiter`` registered here under a session id (or, for an inbox,
under its agent id). The hub hands each waiter the events of its session (or the
events mentioning its agent) and wakes it; an idle waiter is an ``asyncio.Event``
nobody sets, and costs nothing.

Events reach the hub the way they reach browsers, from the one publisher:

- this process's own commits: ``realtime.publisher.committed`` calls ``notify``,
  at once, from whichever thread committed;
- other processes' commits: what their publishers delivered to the channel layer,
  relayed by a wake stream (``realtime.wake_stream``) that calls ``notify`` too;
- when events may have been missed (the stream was down, a gap in seqs), ``invalidate``
  marks waiters stale, and they read the database; the stream's safety poll does that
  for the waiters whose session moved past what they know (``behind``).

At most ``SCS_MAX_WAITERS`` waiters at once per process; the next gets ``TOO_MANY_WAITERS``.

A waiter never trusts the hub to be complete: it reads the database when it starts
and whenever it is stale or sees a gap in seqs (``realtime.waiting``). The hub only
makes it fast.

A waiter registered with the claims of the token it waits under is guarded: while
it waits, ``realtime.wait_guard`` checks that token with every other waiter's, and
refuses the waiter (ending its wait with ``refusal``) once the token stops being good.
"""

import asyncio
import contextlib
import logging

from realtime import conf, mentions
from realtime.envelope import NEW_MESSAGE
from realtime.errors import ErrorCode, OperationError

logger = logging.getLogger(__name__)


class Waiter:
    """One waiting call: the events handed to it since it last took them, and whether it must re-read."""

    __slots__ = ("events", "stale", "refusal", "known", "parked", "_ready")

    def __init__(self):
        self.events = []
        self.stale = False
        self.refusal = None  # an OperationError once the token it waits under stopped being good
        self.known = 0  # the highest seq of its session it read or was handed (session waiters)
        self.parked = False  # asleep in ``wait`` now
        self._ready = asyncio.Event()

    def offer(self, event):
        self.events.append(event)
        if event["seq"] > self.known:
            self.known = event["seq"]
        self._ready.set()

    def saw(self, seq):
        """It read its session up to ``seq`` from the database."""
        if seq > self.known:
            self.known = seq

    def invalidate(self):
        self.stale = True
        self._ready.set()

    def refuse(self, error):
        self.refusal = error
        self._ready.set()

    def check(self):
        """Raise the refusal, if the token this waiter waits under stopped being good."""
        if self.refusal is not None:
            raise self.refusal

    async def wait(self, within):
        """True once something was handed over (the waiter went stale or was refused); False after ``within`` s."""
        if self.events or self.stale or self.refusal is not None:
            return True
        self.parked = True
        try:
            await asyncio.wait_for(self._ready.wait(), within)
        except TimeoutError:
            return False
        finally:
            self.parked = False
        return True

    def take(self):
        """``(events, stale)`` handed over since the last take; resets both."""
        events, stale = self.events, self.stale
        self.events, self.stale = [], False
        self._ready.clear()
        return events, stale


class Hub:
    """This process's waiters, by session id and by mentioned agent id. Used on one event loop."""

    def __init__(self):
        self._loop = None
        self.sessions = {}  # session id -> set of Waiter
        self.inboxes = {}  # agent id -> set of Waiter
        self.guarded = {}  # Waiter -> the claims of the token it waits under
        self._guard = None  # the task checking them (realtime.wait_guard), while any is registered
        # refused: calls turned away by SCS_MAX_WAITERS; rights_ended: waits ended by their token (wait_guard).
        self.counters = {"notified": 0, "offered": 0, "invalidated": 0, "refused": 0, "rights_ended": 0}
        self.count = 0  # waiters registered now

    @property
    def waiting(self):
        return bool(self.sessions or self.inboxes)

    @contextlib.contextmanager
    def _register(self, table, key, claims):
        limit = conf.get("SCS_MAX_WAITERS")
        if self.count >= limit:
            self.counters["refused"] += 1
            raise OperationError(
                ErrorCode.TOO_MANY_WAITERS, f"this server already holds {limit} waiting calls (SCS_MAX_WAITERS)",
                "Retry in a few seconds, or read with get_messages(since_seq=...) meanwhile.",
            )
        self._loop = asyncio.get_running_loop()
        waiter = Waiter()
        table.setdefault(key, set()).add(waiter)
        self.count += 1
        if claims is not None:
            self.guarded[waiter] = claims
            if self._guard is None or self._guard.done():
                from realtime import wait_guard

                self._guard = self._loop.create_task(wait_guard.guard_forever(self), name="wait-guard")
        try:
            yield waiter
        finally:
            self.count -= 1
            self.guarded.pop(waiter, None)
            waiters = table.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del table[key]

    def session(self, session_id, claims=None):
        """``with hub.session(id, claims) as waiter``: the events of that session, while the block runs."""
        return self._register(self.sessions, session_id, claims)

    def inbox(self, agent_id, claims=None):
        """``with hub.inbox(agent_id, claims) as waiter``: the events mentioning that agent, while the block runs."""
        return self._register(self.inboxes, agent_id, claims)

    # Feeding the hub (from any thread)

    def notify(self, events):
        """Hand stored message events to the waiters they concern. Thread-safe; never raises."""
        if not self.waiting:
            # Nobody waits. A waiter registering now reads the database after registering, and these
            # events were committed before: it will find them there.
            return
        self._call(self._dispatch, list(events))

    def invalidate(self, session_ids=None):
        """Events of these sessions (of every session and inbox when None) may have been missed. Thread-safe."""
        if self.waiting:
            self._call(self._invalidate, None if session_ids is None else set(session_ids))

    def _call(self, fn, argument):
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(argument)
            return
        try:
            loop.call_soon_threadsafe(fn, argument)
        except RuntimeError:  # the loop closed meanwhile: its waiters are gone with it
            pass

    def _dispatch(self, events):
        self.counters["notified"] += len(events)
        for event in events:
            if event.get("type") != NEW_MESSAGE:
                continue  # e.g. a session closed: nothing for a waiter to read
            for waiter in self.sessions.get(event.get("session_id"), ()):
                waiter.offer(event)
                self.counters["offered"] += 1
            if self.inboxes:
                for agent_id in mentions.of_event(event):
                    for waiter in self.inboxes.get(agent_id, ()):
                        waiter.offer(event)
                        self.counters["offered"] += 1

    def _invalidate(self, session_ids):
        self.counters["invalidated"] += 1
        for session_id, waiters in self.sessions.items():
            if session_ids is None or session_id in session_ids:
                for waiter in waiters:
                    waiter.invalidate()
        for waiters in self.inboxes.values():  # a missed event may have mentioned anyone
            for waiter in waiters:
                waiter.invalidate()

    def behind(self, newest):
        """Wake the session waiters that know less than ``newest`` (session id -> its last seq); on the hub's loop.

        How many were woken. The safety poll calls it with what the database says.
        """
        woken = 0
        for session_id, last_seq in newest.items():
            for waiter in self.sessions.get(session_id, ()):
                if waiter.known < last_seq:
                    waiter.saw(last_seq)
                    waiter.invalidate()
                    woken += 1
        return woken

    def stats(self):
        return {
            **self.counters,
            "waiters": self.count,
            "parked": sum(waiter.parked for table in (self.sessions, self.inboxes) for waiters in table.values()
                          for waiter in waiters),
            "sessions": len(self.sessions),
            "session_waiters": sum(len(waiters) for waiters in self.sessions.values()),
            "inbox_waiters": sum(len(waiters) for waiters in self.inboxes.values()),
            "guarded": len(self.guarded),
        }


hub = Hub()
