"""Group commit: what several threads of a process write at once shares one transaction.

``GroupCommit(write_batch).submit(item)`` returns ``item``'s outcome. The thread
that submits while no other writes becomes the leader: it takes the items waiting
(its own first, at most ``max_batch``), calls ``write_batch`` on them, hands every
item its outcome, and makes the thread of the next waiting item the leader. A thread
that submits meanwhile waits, and its item goes into the next batch.

Alone, a writer writes its item at once, as it would without this. Under load, one
transaction carries many items: a message written by 8 agents' calls at once cost the
sidecar a transaction, a seq statement and an insert each, and each of those SQLite
calls gives the interpreter's lock up and waits to take it back while the event loop
runs other calls, so the writers queued behind a transaction that took 2-3 ms of wall
time for 0.7 ms of work. Items are taken in the order they were submitted.

``write_batch(items)`` returns one outcome per item, in order: a value to return, or
an exception to raise in the item's own thread (each item its own instance). If it
raises instead, every item of the batch raises that exception. ``after_batch(outcomes)``,
if given, runs once the next leader may start: slow work there (a synchronous send)
holds up no other writer. The batches' ``after_batch`` calls run in the order the
batches were written (messages are published in seq order), except that one waiting
more than ``order_wait`` seconds for the one before goes ahead. It runs before the
batch's threads return; what it raises is logged.
"""

import collections
import copy
import logging
import threading

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 50
DEFAULT_ORDER_WAIT = 0.25  # seconds an after_batch waits for the batch before's


class _Pending:
    __slots__ = ("item", "outcome", "ready", "leads")

    def __init__(self, item):
        self.item = item
        self.outcome = None
        self.ready = threading.Event()
        self.leads = False  # set with ready: this thread writes the next batch


class GroupCommit:
    def __init__(self, write_batch, *, after_batch=None, max_batch=DEFAULT_MAX_BATCH, order_wait=DEFAULT_ORDER_WAIT):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.write_batch = write_batch
        self.after_batch = after_batch
        self.max_batch = max_batch
        self.order_wait = order_wait
        self._mutex = threading.Lock()
        self._waiting = collections.deque()
        self._writing = False  # a leader is between taking its batch and handing on; _waiting may still fill
        self._afters = threading.Condition()
        self._after_done = 0  # the newest batch (numbered from 1) whose after_batch has run
        self.batches = 0  # written, and the number of the newest
        self.items = 0

    def submit(self, item):
        """Write ``item`` (alone, or in one batch with what other threads submit meanwhile); its outcome."""
        pending = _Pending(item)
        with self._mutex:
            self._waiting.append(pending)
            leads = not self._writing
            self._writing = True
        if not leads:
            try:
                pending.ready.wait()
            except BaseException:  # interrupted (a signal, in the main thread): leave the line
                self._leave(pending)
                raise
            if not pending.leads:
                return self._result(pending)
        self._lead()
        return self._result(pending)

    def _lead(self):
        with self._mutex:  # this thread's item is first: it was first in line when it was made leader
            batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
        interrupted = None
        try:
            outcomes = self.write_batch([pending.item for pending in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"write_batch returned {len(outcomes)} outcomes for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - every item of the batch raises it, in its own thread
            outcomes = [exc, *(_copy(exc) for _ in batch[1:])]
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt, SystemExit: this thread's, raised below
            interrupted = exc
            outcomes = [RuntimeError("the thread writing this batch was interrupted") for _ in batch]
        try:
            number = self._hand_on(len(batch))
            if self.after_batch is not None:
                self._after_in_turn(number, outcomes)
        finally:
            for pending, outcome in zip(batch, outcomes, strict=True):
                pending.outcome = outcome
                pending.ready.set()
        if interrupted is not None:
            raise interrupted

    def _hand_on(self, written):
        """Count the batch just written and make the next waiting thread the leader; the batch's number."""
        with self._mutex:
            self.batches += 1
            self.items += written
            number = self.batches
            successor = self._make_leader()
        if successor is not None:
            successor.ready.set()
        return number

    def _make_leader(self):
        """With the mutex held: the first waiting item's thread leads next (returned, to be woken), or none writes."""
        successor = self._waiting[0] if self._waiting else None
        if successor is None:
            self._writing = False
        else:
            successor.leads = True
        return successor

    def _leave(self, pending):
        """A waiting thread gives up: its item leaves the line, and if it was to lead, the next one leads."""
        with self._mutex:
            if pending in self._waiting:
                self._waiting.remove(pending)
            successor = self._make_leader() if pending.leads else None
        if successor is not None:
            successor.ready.set()

    def _after_in_turn(self, number, outcomes):
        """after_batch for batch ``number``, once batch ``number - 1``'s has run (or order_wait has passed)."""
        with self._afters:
            if not self._afters.wait_for(lambda: self._after_done >= number - 1, timeout=self.order_wait):
                logger.warning("batch %d goes ahead of batch %d, whose after_batch is still running",
                               number, self._after_done + 1)
        try:
            self.after_batch(outcomes)
        except Exception:
            logger.exception("after_batch failed for a batch of %d", len(outcomes))
        finally:
            with self._afters:
                self._after_done = max(self._after_done, number)
                self._afters.notify_all()

    @staticmethod
    def _result(pending):
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        return pending.outcome


def _copy(exc):
    """Another instance of ``exc`` for another thread to raise (one instance raised in two would share its
    traceback); ``exc`` itself where it cannot be copied."""
    try:
        return copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception class that does not copy
        return exc
