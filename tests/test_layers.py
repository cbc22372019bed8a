"""The in-memory channel layer used by a single Daphne process."""

import asyncio

import pytest

from realtime.live.layers import InMemoryChannelLayer, is_process_local


async def test_group_send_reaches_every_member_once_and_isolates_the_sender():
    layer = InMemoryChannelLayer(capacity=10)
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("session.x", channel)
    message = {"type": "session.events", "events": [{"seq": 1}]}
    await layer.group_send("session.x", message)
    message["events"].append({"seq": 2})  # the sender's later changes do not leak into what was sent
    for channel in channels:
        received = await asyncio.wait_for(layer.receive(channel), 1)
        assert received["events"] == [{"seq": 1}]
    for channel in channels:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.05)


async def test_a_full_member_misses_the_message_and_the_others_still_get_it():
    layer = InMemoryChannelLayer(capacity=1)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, fast):
        await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "t", "n": 1})
    assert (await layer.receive(fast))["n"] == 1
    await layer.group_send("g", {"type": "t", "n": 2})  # slow's queue is still full
    assert (await layer.receive(fast))["n"] == 2
    assert (await layer.receive(slow))["n"] == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(slow), 0.05)


async def test_the_sweep_drops_expired_messages_but_keeps_a_slow_member_in_its_group():
    layer = InMemoryChannelLayer(expiry=0, capacity=10)
    layer.sweep_interval = 0
    slow = await layer.new_channel()
    await layer.group_add("g", slow)
    await layer.group_send("g", {"type": "t", "n": 1})
    await asyncio.sleep(0.01)
    layer._clean_expired()
    assert slow not in layer.channels  # the expired message is gone, and so is the idle queue
    assert slow in layer.groups["g"]  # but the member still hears what comes next (and fills gaps by seq)
    layer.expiry = 60
    await layer.group_send("g", {"type": "t", "n": 2})
    assert (await asyncio.wait_for(layer.receive(slow), 1))["n"] == 2


def test_is_process_local_recognises_in_memory_layers():
    assert is_process_local({"BACKEND": "realtime.live.layers.InMemoryChannelLayer"})
    assert is_process_local({"BACKEND": "channels.layers.InMemoryChannelLayer"})
    assert not is_process_local({"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"})
    assert not is_process_local({"BACKEND": "no.such.Layer"})
