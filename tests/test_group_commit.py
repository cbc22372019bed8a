"""``realtime.group_commit``: writers alone write at once; writers meanwhile share the next batch."""

import logging
import threading
import time

import pytest

from realtime.group_commit import GroupCommit
from tests.helpers import until


class Writer:
    """A ``write_batch`` that records its batches; the batch holding ``hold`` waits for ``release``."""

    def __init__(self, hold=None, outcome=lambda item: item * 10):
        self.batches, self.hold, self.outcome = [], hold, outcome
        self.holding, self.release = threading.Event(), threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        if self.hold in items:
            self.holding.set()
            assert self.release.wait(10)
        return [self.outcome(item) for item in items]


class Submitter(threading.Thread):
    def __init__(self, group, item):
        super().__init__()
        self.group, self.item, self.result, self.error = group, item, None, None
        self.start()

    def run(self):
        try:
            self.result = self.group.submit(self.item)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc


def queue_while_held(group, writer, items):
    """Submit ``writer.hold`` on a thread, then each of ``items`` on its own once the first holds, in order."""
    first = Submitter(group, writer.hold)
    assert writer.holding.wait(5)
    others = []
    for item in items:
        others.append(Submitter(group, item))
        until(lambda: len(group._waiting) == len(others))  # queued in this order
    writer.release.set()
    for thread in (first, *others):
        thread.join(10)
        assert not thread.is_alive()
    return first, others


def test_a_writer_alone_writes_its_item_at_once():
    writer = Writer()
    group = GroupCommit(writer)
    assert [group.submit(n) for n in (1, 2, 3)] == [10, 20, 30]
    assert writer.batches == [[1], [2], [3]]
    assert (group.batches, group.items) == (3, 3)


def test_items_submitted_while_one_is_written_share_the_next_batch_in_order():
    writer = Writer(hold=0)
    group = GroupCommit(writer)
    first, others = queue_while_held(group, writer, [1, 2, 3, 4, 5])
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]
    assert first.result == 0 and [t.result for t in others] == [10, 20, 30, 40, 50]
    assert (group.batches, group.items) == (2, 6)


def test_a_batch_holds_at_most_max_batch_items():
    writer = Writer(hold=0)
    group = GroupCommit(writer, max_batch=2)
    queue_while_held(group, writer, [1, 2, 3, 4, 5])
    assert writer.batches == [[0], [1, 2], [3, 4], [5]]


def test_each_item_gets_its_own_outcome_an_exception_raised_in_its_own_thread():
    writer = Writer(hold=0, outcome=lambda item: ValueError(f"bad {item}") if item == 2 else item)
    group = GroupCommit(writer)
    _, (one, two, three) = queue_while_held(group, writer, [1, 2, 3])
    assert (one.result, one.error, three.result) == (1, None, 3)
    assert isinstance(two.error, ValueError) and str(two.error) == "bad 2" and two.result is None


def test_a_write_batch_that_raises_fails_its_batch_only():
    def write(items):
        if 1 in items:
            raise RuntimeError("disk full")
        return list(items)

    writer = Writer(hold=0)
    group = GroupCommit(lambda items: writer(items) if 0 in items else write(items))
    _, (one, two) = queue_while_held(group, writer, [1, 2])
    assert [str(one.error), str(two.error)] == ["disk full", "disk full"] and one.error is not two.error
    assert group.submit(3) == 3  # the next batch is written


def test_a_write_batch_returning_too_few_outcomes_fails_its_batch():
    group = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.submit(1)
    assert not group._writing


def test_after_batch_runs_once_the_next_leader_may_write_and_before_the_batch_returns():
    """A slow after_batch (a synchronous send) holds up no other writer's write (the next after_batch waits for
    it, at most order_wait); its batch returns after it."""
    after_started, after_release, afters = threading.Event(), threading.Event(), []

    def after(outcomes):
        afters.append(outcomes)
        if outcomes == [10]:
            after_started.set()
            assert after_release.wait(10)

    writer = Writer(hold=1)
    group = GroupCommit(writer, after_batch=after)
    slow = Submitter(group, 1)
    assert writer.holding.wait(5)
    second = Submitter(group, 2)  # waiting when the first batch is written: the next leader
    until(lambda: len(group._waiting) == 1)
    writer.release.set()
    assert after_started.wait(5)
    second.join(5)  # written and returned while the first after_batch still runs
    assert (second.is_alive(), second.result) == (False, 20)
    assert slow.is_alive() and slow.result is None
    after_release.set()
    slow.join(5)
    assert slow.result == 10 and afters == [[10], [20]]


def test_an_after_batch_that_raises_is_logged_and_the_items_still_return(caplog):
    def after(outcomes):
        raise RuntimeError("publisher gone")

    group = GroupCommit(Writer(), after_batch=after)
    with caplog.at_level(logging.ERROR, logger="realtime.group_commit"):
        assert group.submit(4) == 40
    assert "after_batch failed" in caplog.text
    assert group.submit(5) == 50


def test_many_threads_each_get_their_own_outcome_once():
    writer = Writer()
    group = GroupCommit(writer)
    threads = [Submitter(group, n) for n in range(200)]
    for thread in threads:
        thread.join(10)
    assert [t.result for t in threads] == [n * 10 for n in range(200)]
    assert sorted(item for batch in writer.batches for item in batch) == list(range(200))
    assert group.items == 200 and not group._writing and not group._waiting


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(Writer(), max_batch=0)


def after_batches(first_after, order_wait):
    """Batch [1] written, then batch [2] while [1] is held; ``first_after`` runs as batch [1]'s after_batch.
    Returns the after_batch calls, in the order they began, and the two threads."""
    began = []

    def after(outcomes):
        began.append(outcomes)
        if outcomes == [10]:
            first_after()
            began.append("[10] ended")

    writer = Writer(hold=1)
    group = GroupCommit(writer, after_batch=after, order_wait=order_wait)
    first = Submitter(group, 1)
    assert writer.holding.wait(5)
    second = Submitter(group, 2)
    until(lambda: len(group._waiting) == 1)
    writer.release.set()
    return began, first, second


def test_after_batch_runs_in_the_order_the_batches_were_written():
    """Batch 2 is written while batch 1's after_batch runs, but its own after_batch waits for that one to end."""
    began, first, second = after_batches(lambda: time.sleep(0.1), order_wait=5)
    for thread in (first, second):
        thread.join(5)
    assert began == [[10], "[10] ended", [20]]
    assert (first.result, second.result) == (10, 20)


def test_an_after_batch_that_hangs_holds_the_next_one_only_for_order_wait(caplog):
    release = threading.Event()
    with caplog.at_level(logging.WARNING, logger="realtime.group_commit"):
        began, first, second = after_batches(lambda: release.wait(10), order_wait=0.05)
        second.join(5)
        assert (second.is_alive(), second.result, began) == (False, 20, [[10], [20]])
        assert first.is_alive()
    release.set()
    first.join(5)
    assert first.result == 10 and began == [[10], [20], "[10] ended"]
    assert "batch 2 goes ahead of batch 1" in caplog.text


class Interrupted(BaseException):
    """As KeyboardInterrupt: not an Exception."""


class Catching(Submitter):
    def run(self):
        try:
            self.result = self.group.submit(self.item)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc


def test_a_leader_interrupted_while_writing_fails_its_batch_and_hands_on():
    writer = Writer(hold=0)

    def write(items):
        if 1 in items:
            raise Interrupted
        return writer(items)

    group = GroupCommit(write)
    first = Catching(group, 0)
    assert writer.holding.wait(5)
    leader, follower = Catching(group, 1), None
    until(lambda: len(group._waiting) == 1)
    follower = Catching(group, 2)
    until(lambda: len(group._waiting) == 2)
    writer.release.set()
    for thread in (first, leader, follower):
        thread.join(5)
    assert isinstance(leader.error, Interrupted)  # the leader's own
    assert isinstance(follower.error, RuntimeError) and "interrupted" in str(follower.error)
    assert group.submit(3) == 30 and not group._writing


def test_an_after_batch_raising_a_base_exception_still_lets_the_batch_return():
    def after(outcomes):
        if outcomes == [10]:
            raise Interrupted

    group = GroupCommit(Writer(), after_batch=after)
    with pytest.raises(Interrupted):
        group.submit(1)
    assert group.submit(2) == 20 and not group._writing


@pytest.mark.parametrize("made_leader", [False, True])
def test_a_waiting_thread_interrupted_leaves_the_line_and_the_next_one_is_written(monkeypatch, made_leader):
    """Interrupted while in line (``made_leader``: just as it was made the next leader)."""
    from realtime import group_commit

    class InterruptedWait(threading.Event):
        def wait(self, timeout=None):
            if made_leader:
                super().wait(timeout)
            raise Interrupted

    class Pending(group_commit._Pending):
        def __init__(self, item):
            super().__init__(item)
            if item == 1:
                self.ready = InterruptedWait()

    monkeypatch.setattr(group_commit, "_Pending", Pending)
    writer = Writer(hold=0)
    group = GroupCommit(writer)
    first = Catching(group, 0)
    assert writer.holding.wait(5)
    leaving = Catching(group, 1)
    if made_leader:
        until(lambda: len(group._waiting) == 1)
    else:
        leaving.join(5)
    second = Catching(group, 2)
    until(lambda: 2 in [pending.item for pending in group._waiting])
    writer.release.set()
    for thread in (first, leaving, second):
        thread.join(5)
        assert not thread.is_alive()
    assert isinstance(leaving.error, Interrupted)
    assert (first.result, second.result) == (0, 20)
    assert writer.batches == [[0], [2]] and not group._writing and not group._waiting
