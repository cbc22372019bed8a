"""``realtime.live.mailbox.Mailbox``: ``asyncio.Queue``'s behaviour for what a connection uses of it."""

import asyncio
import threading

import pytest

from realtime.live.mailbox import Mailbox


async def test_items_come_out_in_the_order_they_went_in():
    box = Mailbox()
    for n in range(5):
        box.put_nowait(n)
    assert box.qsize() == 5 and not box.empty()
    assert [await box.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert box.empty() and box.qsize() == 0


async def test_get_waits_for_the_next_item():
    box = Mailbox()
    getter = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not getter.done() and box.waited_on()
    box.put_nowait("late")
    assert await getter == "late"
    assert not box.waited_on()


async def test_a_full_mailbox_refuses_as_asyncio_queue_does():
    box = Mailbox(maxsize=2)
    box.put_nowait(1)
    box.put_nowait(2)
    assert box.full()
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(3)
    assert await box.get() == 1
    box.put_nowait(3)
    assert [await box.get(), await box.get()] == [2, 3]


def test_get_nowait_on_an_empty_mailbox_raises():
    with pytest.raises(asyncio.QueueEmpty):
        Mailbox().get_nowait()


async def test_several_getters_each_get_one_item_in_the_order_they_waited():
    box = Mailbox()
    getters = [asyncio.ensure_future(box.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for item in "abc":
        box.put_nowait(item)
    assert await asyncio.gather(*getters) == ["a", "b", "c"]


async def test_a_getter_cancelled_after_it_was_woken_passes_the_item_on():
    box = Mailbox()
    first, second = asyncio.ensure_future(box.get()), asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    box.put_nowait("only")  # wakes the first getter ...
    first.cancel()  # ... which is cancelled before it runs
    assert await second == "only"
    assert first.cancelled() and box.empty() and not box.waited_on()


async def test_a_cancelled_getter_is_forgotten():
    box = Mailbox()
    getter = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert not box.waited_on()
    box.put_nowait("kept")
    assert box.get_nowait() == "kept"


def test_an_idle_mailbox_is_far_smaller_than_an_asyncio_queue():
    import sys

    def size(queue):  # the object, its attribute dict if any, and what its attributes hold
        names = getattr(queue, "__slots__", None) or list(vars(queue))
        held = [getattr(queue, name) for name in names]
        return (sys.getsizeof(queue) + sys.getsizeof(getattr(queue, "__dict__", None) or {})
                + sum(sys.getsizeof(value) for value in held))

    assert size(Mailbox()) * 10 < size(asyncio.Queue())


async def test_a_mailbox_bound_to_another_loop_says_so():
    box = Mailbox()
    assert not box.bound_elsewhere()  # never waited on: usable anywhere
    getter = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    box.put_nowait(1)
    await getter
    assert not box.bound_elsewhere()  # waited on here

    def read_on_a_loop_of_its_own():
        other = Mailbox()

        async def wait_then_get():
            getter = asyncio.ensure_future(other.get())  # waits: that binds the mailbox to this loop
            await asyncio.sleep(0)
            other.put_nowait(1)
            await getter

        asyncio.run(wait_then_get())
        return other

    made = []
    thread = threading.Thread(target=lambda: made.append(read_on_a_loop_of_its_own()))
    thread.start()
    thread.join()
    assert made[0].bound_elsewhere()
