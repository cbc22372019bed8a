"""A consumer's dispatch loop without a task per message.

Channels' ``AsyncConsumer.__call__`` runs ``channels.utils.await_many_dispatch``: for every
message it starts a new receiving task and waits on both sources with ``asyncio.wait``,
so one event to 10,000 viewers is 10,000 new tasks, 10,000 waits and three loop turns
per viewer. ``dispatch_in_turn`` reads one source in the consumer's own task and each
other one in a task kept for the consumer's life, and hands messages to ``dispatch``
one at a time, in arrival order per source, as Channels does (``python -m bench fanout``
measures the difference). Channels offers no hook for the loop; ``LiveConsumer.__call__``
is Channels' own, with this loop in it.

``dispatch_directly`` is Channels' ``AsyncConsumer.dispatch`` without its hop to the
database thread before every handler (``close_old_connections``), for messages whose
handlers read no database or read it through ``database_sync_to_async``, which closes
stale connections around itself.
"""

import asyncio

from channels.consumer import get_handler_name


async def dispatch_directly(consumer, message):
    """Call ``consumer``'s handler for ``message`` as Channels does, minus the database hop."""
    handler = getattr(consumer, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    await handler(message)


class LayerEventsDirectly:
    """A consumer mixin: the client's events (``websocket.*``) through Channels' ``dispatch``, with its
    database hygiene; the channel layer's events straight to their handlers (``dispatch_directly``)."""

    async def dispatch(self, message):
        if message["type"].startswith("websocket."):
            await super().dispatch(message)
        else:
            await dispatch_directly(self, message)


async def dispatch_in_turn(sources, dispatch):
    """Receive from every source (async callables) and ``await dispatch(message)`` one message at a time.

    The first source is read in the calling task, each other one in a task of its own (for a consumer:
    one task besides Daphne's, about 1 KiB less per connection than waiting on both with ``asyncio.wait``).
    Raises what a dispatch raised (e.g. ``StopConsumer``) or a source's receive, as soon as one does;
    nothing is dispatched after that.
    """
    turn = asyncio.Lock()
    stopped = False

    async def pump(receive):
        nonlocal stopped
        while True:
            message = await receive()
            async with turn:
                if stopped:
                    return
                try:
                    await dispatch(message)
                except BaseException:
                    stopped = True
                    raise

    caller = asyncio.current_task()
    leaving = False

    def failed():
        """The exception that ended another source's task, if one did."""
        return next((task.exception() for task in tasks
                     if task.done() and not task.cancelled() and task.exception() is not None), None)

    def ended(task):  # another source's task ended on an error: the caller stops reading and raises it
        if not leaving and not task.cancelled() and task.exception() is not None:
            caller.cancel()

    first, *others = sources
    tasks = [asyncio.ensure_future(pump(receive)) for receive in others]
    for task in tasks:
        task.add_done_callback(ended)
    try:
        await pump(first)  # returns only once another source's dispatch stopped the loop
    except asyncio.CancelledError:
        if failed() is None:
            raise  # cancelled from outside
        caller.uncancel()  # the cancel was ours, to raise what that task raised
    finally:
        leaving = True
        for task in tasks:
            task.remove_done_callback(ended)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    error = failed()
    if error is not None:
        raise error
