"""A consumer's dispatch loop without a task per message.

Channels' ``AsyncConsumer.__call__`` runs ``channels.utils.await_many_dispatch``: for every
message it starts a new receiving task and waits on both sources with ``asyncio.wait``,
so one event to 10,000 viewers is 10,000 new tasks, 10,000 waits and three loop turns
per viewer. ``dispatch_in_turn`` keeps one receiving task per source for the consumer's
life and hands messages to ``dispatch`` one at a time, in arrival order per source, as
Channels does (``python -m bench fanout`` measures the difference). Channels offers no
hook for the loop; ``LiveConsumer.__call__`` is Channels' own, with this loop in it.
"""

import asyncio


async def dispatch_in_turn(sources, dispatch):
    """Receive from every source (async callables) and ``await dispatch(message)`` one message at a time.

    Returns or raises as soon as a dispatch does (e.g. ``StopConsumer``); nothing is dispatched after that.
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

    tasks = [asyncio.ensure_future(pump(receive)) for receive in sources]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
