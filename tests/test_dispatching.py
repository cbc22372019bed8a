"""``realtime.live.dispatching``: one message at a time, in order per source, nothing after the consumer stops."""

import asyncio

import pytest
from channels.exceptions import StopConsumer

from realtime.live.dispatching import LayerEventsDirectly, dispatch_directly, dispatch_in_turn


def source(queue):
    return queue.get


async def test_messages_are_dispatched_one_at_a_time_in_order_per_source():
    client, layer = asyncio.Queue(), asyncio.Queue()
    for n in range(5):
        client.put_nowait(("client", n))
        layer.put_nowait(("layer", n))
    client.put_nowait(("stop", None))
    seen, running = [], []

    async def dispatch(message):
        if message[0] == "stop":
            if len([m for m in seen if m[0] == "layer"]) < 5:  # let the layer's messages through first
                client.put_nowait(message)
                await asyncio.sleep(0)
                return
            raise StopConsumer
        running.append(message)
        assert len(running) == 1  # never two handlers at once
        await asyncio.sleep(0)  # a handler that awaits keeps its turn
        seen.append(running.pop())

    with pytest.raises(StopConsumer):
        await dispatch_in_turn([source(client), source(layer)], dispatch)
    assert [n for kind, n in seen if kind == "client"] == list(range(5))
    assert [n for kind, n in seen if kind == "layer"] == list(range(5))


async def test_nothing_is_dispatched_once_a_dispatch_stopped_the_consumer():
    client, layer = asyncio.Queue(), asyncio.Queue()
    seen = []

    async def dispatch(message):
        if message == "disconnect":
            layer.put_nowait("late")  # arrives while the disconnect is handled
            await asyncio.sleep(0)
            raise StopConsumer
        seen.append(message)

    client.put_nowait("disconnect")
    with pytest.raises(StopConsumer):
        await dispatch_in_turn([source(client), source(layer)], dispatch)
    await asyncio.sleep(0.01)
    assert seen == []


async def test_an_error_in_a_handler_ends_the_loop_with_it():
    client = asyncio.Queue()
    client.put_nowait("boom")

    async def dispatch(message):
        raise ValueError(message)

    with pytest.raises(ValueError, match="boom"):
        await dispatch_in_turn([source(client)], dispatch)


async def test_an_error_in_a_handler_of_another_source_ends_the_loop_with_it():
    client, layer = asyncio.Queue(), asyncio.Queue()
    layer.put_nowait("boom")  # from the channel layer, read in a task of its own

    async def dispatch(message):
        raise ValueError(message)

    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(dispatch_in_turn([source(client), source(layer)], dispatch), 2)
    assert asyncio.current_task().cancelling() == 0  # the loop's own cancel request was taken back


async def test_cancelling_the_loop_stops_every_source():
    client, layer = asyncio.Queue(), asyncio.Queue()
    seen = []

    async def dispatch(message):
        seen.append(message)

    loop_task = asyncio.ensure_future(dispatch_in_turn([source(client), source(layer)], dispatch))
    await asyncio.sleep(0.01)
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task
    layer.put_nowait("late")
    client.put_nowait("late")
    await asyncio.sleep(0.01)
    assert seen == []


async def test_an_error_while_the_client_waits_for_its_turn_still_ends_the_loop_with_it():
    client, layer = asyncio.Queue(), asyncio.Queue()
    seen = []

    async def dispatch(message):
        if message == "boom":
            client.put_nowait("frame")  # arrives and waits for its turn while this handler runs
            await asyncio.sleep(0.01)
            raise ValueError(message)
        seen.append(message)

    layer.put_nowait("boom")
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(dispatch_in_turn([source(client), source(layer)], dispatch), 2)
    assert seen == [] and asyncio.current_task().cancelling() == 0
    await asyncio.sleep(0.01)  # no stray cancel reaches this task later


async def test_an_error_in_another_sources_receive_ends_the_loop_with_it():
    client = asyncio.Queue()

    async def broken():
        raise ConnectionError("layer gone")

    async def dispatch(message):
        pass

    with pytest.raises(ConnectionError, match="layer gone"):
        await asyncio.wait_for(dispatch_in_turn([source(client), broken], dispatch), 2)


class Recorder:
    def __init__(self):
        self.handled = []

    async def wake_events(self, message):
        self.handled.append(message)


class ChannelsDispatch:
    """Stands for Channels' ``AsyncConsumer.dispatch``: notes that the database hop would have run."""

    hops = 0

    async def dispatch(self, message):
        ChannelsDispatch.hops += 1


class LayerConsumer(LayerEventsDirectly, ChannelsDispatch, Recorder):
    pass


async def test_layer_events_skip_channels_dispatch_and_client_events_take_it():
    consumer = LayerConsumer()
    ChannelsDispatch.hops = 0
    await consumer.dispatch({"type": "wake.events", "events": [1]})
    assert consumer.handled == [{"type": "wake.events", "events": [1]}]
    assert ChannelsDispatch.hops == 0
    await consumer.dispatch({"type": "websocket.receive", "text": "x"})
    assert ChannelsDispatch.hops == 1
    assert len(consumer.handled) == 1


async def test_a_layer_event_without_a_handler_is_an_error():
    with pytest.raises(ValueError, match="no.such"):
        await dispatch_directly(Recorder(), {"type": "no.such"})


async def test_the_wake_relay_and_live_consumers_take_layer_events_directly():
    from realtime.live.broadcast import BroadcastConsumer
    from realtime.live.consumers import LiveConsumer
    from realtime.live.wake_relay import WakeRelayConsumer

    assert WakeRelayConsumer.dispatch is LayerEventsDirectly.dispatch
    assert LiveConsumer.dispatch is LayerEventsDirectly.dispatch
    consumer = BroadcastConsumer()
    handled = []

    async def http_request(message):
        handled.append(message)

    consumer.http_request = http_request
    await consumer.dispatch({"type": "http.request", "body": b""})  # no database hop: no thread, no connection
    assert handled == [{"type": "http.request", "body": b""}]
