"""The one way a committed message leaves its process, whoever stored it.

``operations.add_message`` hands each message's event to this process's publisher
once it is committed (``committed``), in seq order: right after its own transaction
(which messages that other threads store at the same time share,
``realtime.group_commit``), or, stored inside a caller's transaction, from one
``on_commit`` hook. Nothing that was rolled back is ever published. Then, on the
thread that stored it, ``tell_receivers`` sends ``realtime.signals.message_stored``
for host receivers.
The publisher sends by one strategy, chosen by ``SCS_PUBLISH_VIA`` when it is first used (``realtime.strategies``:
``http`` through Daphne's broadcast door, or ``channel_layer``). In Daphne itself
the publisher always uses its own channel layer (``start_in_daphne``). A session's
change of state (closed, reopened, renamed) leaves the same way (``state_changed``).

Where a publisher loop runs (the sidecar's lifespan; Daphne once a WebSocket
connected), ``publish`` only appends to a bounded queue, from any thread, so
storing never waits for the broadcast. One task sends what is waiting, in order
per session, batched (up to 200 events of every session waiting in one attempt: one
request through the broadcast door, more for large bodies), backing off while the strategy fails; when the queue
overflows the oldest events are dropped, counted and logged (rate-limited).
Elsewhere (a shell, a Celery worker) ``publish`` sends at once, synchronously.

Memory events (``realtime.memory``: an entry set or deleted) take the same way, batched
under ``envelope.MEMORY_TARGET`` rather than a session; they are not marked or swept.

Either way, once the strategy accepted a session's messages the publisher marks
them announced (``realtime.announce``): at once in the synchronous path, at most
once per ``MARK_INTERVAL`` for all sessions in the queued one. Its sweeper
announces what a dead process or a dropped event left behind.
"""

import asyncio
import collections
import logging
import threading
import time

from channels.db import DatabaseSyncToAsync
from django.core.signals import setting_changed
from django.dispatch import receiver

from realtime import announce, conf, wake
from realtime.broadcast_client import REJECTED, RETRY, SENT, Result
from realtime.envelope import MEMORY_TARGET, message_event, target
from realtime.models import Message
from realtime.signals import message_stored
from realtime.strategies import ChannelLayerStrategy, publish_via, strategy_for

logger = logging.getLogger(__name__)

MARK_INTERVAL = 0.25  # seconds: at most one cursor UPDATE per interval, for every session sent meanwhile


class Publisher:
    """A queue, one ordered sender task, the cursor marks and the sweeper, around one strategy.

    ``mark`` and ``sweep`` (``realtime.announce``'s, by default) are sync database calls; None turns one off.
    """

    def __init__(self, strategy, *, max_queue=10_000, batch_max=200, backoff_start=0.05, backoff_max=2.0,
                 sweep_interval=1.0, grace=2.0, mark=announce.mark, sweep=announce.sweep):
        self.strategy = strategy
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.sweep_interval = sweep_interval
        self.grace = grace
        self.mark = mark
        self.sweep = sweep
        self.queue = collections.deque()
        self.inflight = []  # [(session_id, [event, ...])] taken from the queue, not yet accepted
        self.counters = {"sent": 0, "batches": 0, "failed_attempts": 0, "retried": 0, "dropped": 0, "rejected": 0,
                         "swept": 0, "marks": 0}
        self.last_error = ""
        self._marks = {}  # session id -> newest seq accepted, not yet recorded
        self._last_warning = 0.0
        self._loop = None
        self._wakeup = None
        self._tasks = []

    # Lifecycle

    @property
    def running(self):
        return bool(self._tasks) and not self._loop.is_closed() and not self._tasks[0].done()

    async def start(self):
        self.begin()

    def begin(self):
        """Run the sender (and the sweeper, unless ``sweep_interval`` is 0) on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._tasks = [self._loop.create_task(self._send_forever(), name="publisher"),
                       self._loop.create_task(self._mark_forever(), name="publisher-marks")]
        if self.sweep is not None and self.sweep_interval > 0:
            self._tasks.append(self._loop.create_task(self._sweep_forever(), name="publisher-sweeper"))

    async def stop(self, flush_timeout=2.0):
        """Send what is waiting (for at most ``flush_timeout`` s), record the marks, then close."""
        if not self._tasks:
            return
        deadline = time.monotonic() + flush_timeout
        while (self.queue or self.inflight) and time.monotonic() < deadline and self.running:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._record_marks()
        await self.strategy.close()

    # Entry point

    def publish(self, event):
        """Hand over one committed event; never raises, never waits for the broadcast where a loop runs."""
        if self.running:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._enqueue(event)
            else:
                self._loop.call_soon_threadsafe(self._enqueue, event)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.send_now(event)
        else:  # host code on an event loop of its own: do not block it
            loop.run_in_executor(None, self.send_now, event)

    def send_now(self, event):
        """The synchronous path: send ``event`` at once, mark it, or log what to check."""
        session_id, seq = target(event), event.get("seq")  # a session_state or memory event has none
        try:
            result = self.strategy.send_sync(session_id, [event])
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed SCS_BROADCAST_URL; the message is stored
            result = Result(RETRY, f"{type(exc).__name__}: {exc}", "check SCS_BROADCAST_URL")
        if result.outcome != SENT:
            self.counters["rejected" if result.outcome == REJECTED else "failed_attempts"] += 1
            self.last_error = result.error
            if seq is not None:
                what = f"message {seq} of {session_id}"
            else:
                what = "a memory change" if session_id == MEMORY_TARGET else f"a state change of {session_id}"
            logger.warning("%s stored but not published: %s. %s", what, result.error, result.hint)
            return
        self.counters["sent"] += 1
        if self.mark is not None and seq is not None:
            try:
                self.mark({session_id: seq})
                self.counters["marks"] += 1
            except Exception:  # noqa: BLE001 - a sweeper will announce it once more: harmless
                logger.warning("message %s of %s published but not marked announced", seq, session_id, exc_info=True)

    def _enqueue(self, event):
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.counters["dropped"] += 1
            self._warn("publish queue full (%d events): dropped the oldest; a sweeper announces it later",
                       self.max_queue)
        self.queue.append(event)
        self._wakeup.set()

    def stats(self):
        return {
            **self.counters,
            "queue_depth": len(self.queue),
            "inflight": sum(len(events) for _, events in self.inflight),
            "last_error": self.last_error,
            "via": self.strategy.via,
            "target": self.strategy.target,
            "targets": len(getattr(getattr(self.strategy, "client", None), "targets", [self.strategy.target])),
            "sweeping": any(task.get_name() == "publisher-sweeper" and not task.done() for task in self._tasks),
        }

    # Sender task

    def _take_batch(self):
        groups = {}
        for _ in range(min(self.batch_max, len(self.queue))):
            event = self.queue.popleft()
            groups.setdefault(target(event), []).append(event)
        return list(groups.items())

    async def _send_forever(self):
        delay = self.backoff_start
        while True:
            if not self.inflight:
                if not self.queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                self.inflight = self._take_batch()
            try:
                results = await self.strategy.send_many(self.inflight)
            except Exception as exc:  # noqa: BLE001 - e.g. a malformed SCS_BROADCAST_URL: keep the task alive
                failure = Result(RETRY, f"{type(exc).__name__}: {exc}", "check SCS_BROADCAST_URL")
                results = [failure] * len(self.inflight)
            retry = [batch for batch, result in zip(self.inflight, results, strict=True) if result.outcome == RETRY]
            for batch, result in zip(self.inflight, results, strict=True):
                self._settled(*batch, result)
            self.inflight = retry
            if retry:
                failure = next(result for result in results if result.outcome == RETRY)
                self.counters["failed_attempts"] += 1
                self.last_error = failure.error
                self._warn("cannot publish (%s); retrying. %s", failure.error, failure.hint)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            else:
                delay = self.backoff_start

    def _settled(self, session_id, events, result):
        """Count what one attempt did with one target's ``events`` (a session's, or memory events); note the
        messages' marks once sent."""
        if result.outcome == RETRY:
            self.counters["retried"] += len(events)
        elif result.outcome == SENT:
            self.counters["sent"] += len(events)
            self.counters["batches"] += 1
            newest = max((event["seq"] for event in events if "seq" in event), default=0)
            if newest:  # messages were sent (not only state or memory changes)
                self._marks[session_id] = max(newest, self._marks.get(session_id, 0))
        else:
            self.counters["rejected"] += len(events)
            self.last_error = result.error
            logger.error("%d event(s) of %s refused: %s (%s)", len(events), session_id, result.error, result.hint)

    # Marks and sweeps (database work in a worker thread, off the loop)

    async def _mark_forever(self):
        while True:
            await asyncio.sleep(MARK_INTERVAL)
            await self._record_marks()

    async def _record_marks(self):
        if not self._marks or self.mark is None:
            return
        marks, self._marks = self._marks, {}
        try:
            await DatabaseSyncToAsync(self.mark, thread_sensitive=False)(marks)
            self.counters["marks"] += 1
        except Exception as exc:  # noqa: BLE001 - keep them for the next interval
            for session_id, seq in marks.items():
                self._marks[session_id] = max(seq, self._marks.get(session_id, 0))
            self._warn("cannot record announced messages (%s: %s); retrying", type(exc).__name__, exc)

    async def _sweep_forever(self):
        while True:
            await asyncio.sleep(self.sweep_interval)
            if self.queue or self.inflight:
                continue  # live events first; a failing strategy would only queue duplicates
            try:
                events = await DatabaseSyncToAsync(self.sweep, thread_sensitive=False)(
                    self.grace, min(announce.SWEEP_BATCH, self.max_queue))
            except Exception as exc:  # noqa: BLE001 - e.g. the database restarting: next sweep
                self._warn("cannot sweep for unannounced messages (%s: %s)", type(exc).__name__, exc)
                continue
            self.counters["swept"] += len(events)
            for event in events:
                self._enqueue(event)

    def _warn(self, message, *args):
        """Log at most one warning every 10 s, so an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            logger.warning(message + " [sent=%d dropped=%d queued=%d]", *args, self.counters["sent"],
                           self.counters["dropped"], len(self.queue))


_publisher = None
_building = threading.Lock()
SETTINGS = frozenset({"SCS_PUBLISH_VIA", "SCS_BROADCAST_URL", "SCS_BROADCAST_SECRET", "SCS_PUBLISH_MAX_QUEUE",
                      "SCS_ANNOUNCE_SWEEP_INTERVAL", "SCS_ANNOUNCE_GRACE", "CHANNEL_LAYERS"})


def get_publisher():
    """This process's publisher, built from the settings on first use."""
    global _publisher
    if _publisher is None:
        with _building:
            if _publisher is None:
                _publisher = Publisher(
                    strategy_for(publish_via()), max_queue=conf.get("SCS_PUBLISH_MAX_QUEUE"),
                    sweep_interval=conf.get("SCS_ANNOUNCE_SWEEP_INTERVAL"), grace=conf.get("SCS_ANNOUNCE_GRACE"),
                )
    return _publisher


@receiver(setting_changed)
def _rebuild(setting, **kwargs):
    """A test changed a setting the publisher is built from: build it afresh on next use (unless it runs)."""
    global _publisher
    if setting in SETTINGS and _publisher is not None and not _publisher.running:
        _publisher = None


def publish_memory(event):
    """The after-commit hook of a memory write (``realtime.memory``): publish it."""
    get_publisher().publish(event)


def committed(event):
    """A stored message, once committed: wake this process's waiting agents and publish it."""
    wake.hub.notify((event,))
    get_publisher().publish(event)


def tell_receivers(message):
    """Send ``message_stored`` for a committed Message (when anyone listens), on the thread that stored it."""
    if message_stored.has_listeners(Message):
        message_stored.send(sender=Message, event=message_event(message))


def state_changed(event):
    """The after-commit hook of a session closed, reopened or renamed: publish its ``session_state`` event.

    It takes the messages' way out (queued in order behind them, or sent at once), but no sweeper
    announces it again if it is lost: a page shows the state it reads when it loads.
    """
    get_publisher().publish(event)


def start_in_daphne():
    """Run the publisher and its sweeper on Daphne's loop (called as a WebSocket connects; a no-op once running).

    In Daphne it publishes through its own channel layer, which reaches this process's viewers (and every
    process's when shared), whatever ``SCS_PUBLISH_VIA`` says. Not started when sweeping is off.
    """
    publisher = get_publisher()
    if publisher.running or publisher.sweep_interval <= 0:
        return
    if publisher.strategy.via != "channel_layer":
        publisher.strategy = ChannelLayerStrategy()
    publisher.begin()
