"""The two Redis channel layers side by side: ``channels_redis.core`` and ``channels_redis.pubsub``.

``python -m bench channel_layer [--viewers 1000] [--rounds 20] [--latency-rounds 200] [--redis URL]``

No Daphne, no WebSockets: only what the layer adds. Receiver processes stand in
for Daphne processes; each creates its channels, joins them to one group, and
reads them as consumers do (one ``receive`` loop per channel). The parent
group-sends a message the size of a message event and notes when the last
channel of every receiver got it. Layers alternate round by round, so both see
the same machine load. Measured:

- latency: one channel in one receiver, group_send to receive, one message at a time;
- fan-out: ``--viewers`` channels in one receiver, then split over two receivers;
  time until the last channel has the message, and CPU seconds spent per 1,000
  deliveries by the receivers, the sender and Redis (when its /proc entry is readable).

Redis: ``--redis``, else ``SCS_BENCH_REDIS_URL``, ``SCS_TEST_REDIS_URL``, redis://127.0.0.1:6379/0.
"""

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import time
import uuid

from bench import cpu_seconds, redis_pid, summary_ms, table

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
PAYLOAD = {
    "type": "session.events",
    "events": [{"type": "new_message", "session_id": "session_0123456789abcdef", "seq": 1,
                "data": {"id": 1, "sender": "bench-agent", "sender_type": "claude", "content": "x" * 200,
                         "visibility": "public", "metadata": {}, "parent_message_id": None,
                         "timestamp": "2026-01-01T00:00:00.000000Z"}}],
}
WAIT = 30.0  # seconds any one step may take before the run is abandoned


def make_layer(name, url):
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if name == "core":
        return RedisChannelLayer(hosts=[url], capacity=5000, expiry=60)
    return RedisPubSubChannelLayer(hosts=[url])






# Receiver (a child process standing in for one Daphne)


async def receive_forever(layer_name, url, group, count):
    layer = make_layer(layer_name, url)
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    got = collections.Counter()

    async def pump(channel):
        while True:
            message = await layer.receive(channel)
            number = message["round"]
            got[number] += 1
            if got[number] == count:
                print(json.dumps({"round": number, "last": time.monotonic()}), flush=True)

    tasks = [asyncio.create_task(pump(channel)) for channel in channels]
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # parent says stop
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await layer.group_discard(group, channel)
    await layer.flush()


# Parent


class Receiver:
    def __init__(self, layer_name, url, group, count):
        self.count = count
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.channel_layer_bench", "--receiver", layer_name, url, group, str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lines = asyncio.Queue()

    async def start(self):
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._read_lines, loop)
        ready = await asyncio.wait_for(self.lines.get(), WAIT)
        assert ready.get("ready"), ready

    def _read_lines(self, loop):
        for line in self.process.stdout:
            loop.call_soon_threadsafe(self.lines.put_nowait, json.loads(line))

    def stop(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.flush()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


async def one_setup(layer_name, url, counts, rounds):
    """Group-send ``rounds`` messages to receivers holding ``counts`` channels; returns figures."""
    group = f"bench.{uuid.uuid4().hex[:12]}"
    receivers = [Receiver(layer_name, url, group, count) for count in counts]
    sender = make_layer(layer_name, url)
    try:
        for receiver in receivers:
            await receiver.start()
        await asyncio.sleep(0.2)  # let subscriptions settle
        redis = redis_pid(url)
        before = [cpu_seconds(r.process.pid) for r in receivers]
        sender_before = cpu_seconds()
        redis_before = cpu_seconds(redis) if redis else None
        times = []
        for number in range(rounds):
            started = time.monotonic()
            await sender.group_send(group, {**PAYLOAD, "round": number})
            lasts = []
            for receiver in receivers:
                line = await asyncio.wait_for(receiver.lines.get(), WAIT)
                assert line["round"] == number, f"receiver reported {line} while round {number} was expected"
                lasts.append(line["last"])
            times.append(max(lasts) - started)
        deliveries = sum(counts) * rounds
        per_1000 = 1000 / deliveries

        def spent(after, start):
            return None if after is None or start is None else round((after - start) * per_1000, 3)

        figures = {
            "times": times,
            "receiver_cpu": [spent(cpu_seconds(r.process.pid), b) for r, b in zip(receivers, before, strict=True)],
            "sender_cpu": spent(cpu_seconds(), sender_before),
            "redis_cpu": spent(cpu_seconds(redis), redis_before) if redis else None,
        }
    finally:
        for receiver in receivers:
            receiver.stop()
        await sender.flush()
    return figures


async def run(args):
    setups = [("latency, 1 viewer", [1], args.latency_rounds),
              (f"fan-out, {args.viewers} viewers, 1 receiver", [args.viewers], args.rounds),
              (f"fan-out, {args.viewers} viewers, 2 receivers",
               [args.viewers // 2, args.viewers - args.viewers // 2], args.rounds)]
    rows = []
    results = {}
    for title, counts, rounds in setups:
        collected = {name: [] for name in LAYERS}
        order = list(LAYERS)
        for repeat in range(args.repeats):  # alternate which layer goes first
            for name in order if repeat % 2 == 0 else reversed(order):
                collected[name].append(await one_setup(name, args.redis, counts, rounds))
        for name in LAYERS:
            times = [t for run in collected[name] for t in run["times"]]
            last = collected[name][-1]
            stats = summary_ms(times)
            results[(title, name)] = stats
            rows.append([title, name, stats["p50"], stats["p95"], stats["max"],
                         " + ".join(str(c) for c in last["receiver_cpu"]), last["sender_cpu"], last["redis_cpu"]])
    print(table(["setup", "layer", "p50 ms", "p95 ms", "max ms", "receivers CPU s/1k", "sender CPU s/1k",
                 "redis CPU s/1k"], rows))
    print()
    for title, *_ in setups:
        core, pubsub = results[(title, "core")]["p50"], results[(title, "pubsub")]["p50"]
        if core and pubsub:
            print(f"{title}: core p50 / pubsub p50 = {core / pubsub:.2f}")
    return 0


def main(argv):
    if argv[:1] == ["--receiver"]:
        layer_name, url, group, count = argv[1:5]
        asyncio.run(receive_forever(layer_name, url, group, int(count)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench channel_layer", description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--latency-rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2, help="runs per layer, alternating which goes first")
    parser.add_argument("--redis", default=os.environ.get("SCS_BENCH_REDIS_URL")
                        or os.environ.get("SCS_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
