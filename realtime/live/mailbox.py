"""A first-in, first-out queue for one connection, light enough to keep one per viewer.

Two queues stand behind every WebSocket: the one Daphne feeds the consumer's
``receive`` from, and the in-memory channel layer's queue for the consumer's
channel. ``asyncio.Queue`` costs about 3.5 KiB even empty (four deques of 760
bytes: items, getters, putters and the ``join`` event's waiters), 7 KiB of the
memory an idle connection holds. A connection needs none of ``join``,
``task_done`` or awaited ``put``: ``Mailbox`` keeps ``put_nowait`` and ``get``
with the same behaviour (order, capacity, ``asyncio.QueueFull``, cancellation)
and holds a deque only while something waits in it.
"""

import asyncio
from collections import deque


class Mailbox:
    """``asyncio.Queue``'s ``put_nowait`` / ``get`` / ``get_nowait`` / ``empty`` / ``qsize``, for one event loop."""

    __slots__ = ("maxsize", "_items", "_getters", "_loop")

    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._items = None  # a deque while the mailbox holds anything
        self._getters = None  # a list of futures while someone waits
        self._loop = None  # the loop of the first get, as asyncio.Queue binds to it

    def qsize(self):
        return len(self._items) if self._items else 0

    def empty(self):
        return not self._items

    def full(self):
        return 0 < self.maxsize <= self.qsize()

    def bound_elsewhere(self):
        """True when a ``get`` ran on an event loop other than the running one (it could not be awaited here)."""
        return self._loop is not None and self._loop is not asyncio.get_running_loop()

    def waited_on(self):
        """True while a ``get`` waits for an item."""
        return self._getters is not None

    def first(self):
        """The item ``get`` would return next (the mailbox must not be empty)."""
        return self._items[0]

    def put_nowait(self, item):
        if self.full():
            raise asyncio.QueueFull
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._wake_one()

    def get_nowait(self):
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    async def get(self):
        while not self._items:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            getter = self._loop.create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                self._forget(getter)
                if self._items and not getter.cancelled():
                    self._wake_one()  # woken and cancelled at once: pass the item on, as asyncio.Queue does
                raise
            self._forget(getter)
        return self.get_nowait()

    def _forget(self, getter):
        if self._getters is not None:
            if getter in self._getters:
                self._getters.remove(getter)
            if not self._getters:
                self._getters = None

    def _wake_one(self):
        for getter in self._getters or ():
            if not getter.done():
                getter.set_result(None)
                return
