"""What Channels' ``close_old_connections`` before every handler costs a consumer fed at fan-out rates.

``python -m bench dispatch [--viewers 1000] [--events 5] [--rounds 6] [--json]``

``AsyncConsumer.dispatch`` closes stale database connections (a hop to the sync
thread) before every handler, channel-layer events included. This runs
``--viewers`` session WebSockets in this process (the real ASGI stack, agent tokens,
a throw-away SQLite database), then group-sends ``--events`` one-message events per
round and waits until every viewer has them, alternating round by round between:

- ``stock``: ``AsyncConsumer.dispatch`` as Channels ships it;
- ``skip``: handlers of channel-layer events called directly (no hop); the
  client's own events (``websocket.*``) still go through the stock path.

Measured per round: CPU seconds of this process (all threads) per 1,000 delivered
frames, and the time from the first group_send to the last frame received.
"""

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench import cpu_seconds, summary_ms, table
from bench.search_bench import setup_django

ORIGIN = b"http://127.0.0.1:8081"
WAIT = 60.0  # seconds any one step may take before the run is abandoned
MODE = {"skip": False}


def install_switch():
    """``LiveConsumer.dispatch`` chooses per message between the stock path and calling the handler directly."""
    from channels.consumer import AsyncConsumer, get_handler_name

    from realtime.live.consumers import LiveConsumer

    async def dispatch(self, message):
        if MODE["skip"] and not message["type"].startswith("websocket."):
            await getattr(self, get_handler_name(message))(message)
        else:
            await AsyncConsumer.dispatch(self, message)

    LiveConsumer.dispatch = dispatch


async def next_frame(comm):
    output = await comm.receive_output(timeout=WAIT)
    if output["type"] != "websocket.send":
        raise RuntimeError(f"viewer closed: {output}")
    return json.loads(output["text"])


async def connect(application, session_id, number):
    from channels.testing import WebsocketCommunicator

    from realtime import tokens

    token = tokens.issue(f"viewer-{number}", "claude", ["read"])[0]
    comm = WebsocketCommunicator(application, f"/ws/{session_id}/", headers=[
        (b"origin", ORIGIN), (b"authorization", f"Bearer {token}".encode())])
    connected, code = await comm.connect(timeout=WAIT)
    if not connected:
        raise RuntimeError(f"viewer {number} refused: {code}")
    while (await next_frame(comm))["type"] != "caught_up":
        pass
    return comm


async def drain(viewers):
    """Drop whatever is queued (presence updates)."""
    for comm in viewers:
        while not comm.output_queue.empty():
            comm.output_queue.get_nowait()


def event(session_id, seq):
    return {"type": "new_message", "session_id": session_id, "seq": seq,
            "data": {"id": seq, "sender": "bench-agent", "sender_type": "claude", "content": "x" * 200,
                     "visibility": "public", "metadata": {}, "parent_message_id": None,
                     "timestamp": "2026-01-01T00:00:00.000000Z"}}


async def one_round(layer, viewers, session_id, first_seq, events):
    from realtime.envelope import encode
    from realtime.live.groups import session_group

    cpu, started = cpu_seconds(), time.perf_counter()
    for seq in range(first_seq, first_seq + events):
        frame = event(session_id, seq)
        await layer.group_send(session_group(session_id),
                               {"type": "session.events", "events": [frame], "texts": [encode(frame)]})
    for comm in viewers:
        for _ in range(events):
            frame = await next_frame(comm)
            while frame["type"] == "presence":
                frame = await next_frame(comm)
    return cpu_seconds() - cpu, time.perf_counter() - started


async def run(viewers_count, events, rounds):
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from realtime import operations
    from realtime.live import access, presence

    access.INTERVAL = presence.HEARTBEAT = 3600.0  # keep the rights check and heartbeat out of the figures
    install_switch()
    from project.asgi import application

    session_id = (await sync_to_async(operations.create_session)("bench dispatch", "bench")).id
    viewers = []
    for start in range(0, viewers_count, 50):
        viewers += await asyncio.gather(*(connect(application, session_id, n)
                                          for n in range(start, min(start + 50, viewers_count))))
    await asyncio.sleep(presence.COALESCE * 3)  # let the join announcements go out, then drop them
    await drain(viewers)
    layer = get_channel_layer()
    figures = {"stock": [], "skip": []}
    seq = 1
    for number in range(rounds * 2 + 2):  # the first round of each mode warms up and is not counted
        mode = "skip" if number % 2 else "stock"
        MODE["skip"] = mode == "skip"
        cpu, wall = await one_round(layer, viewers, session_id, seq, events)
        seq += events
        if number >= 2:
            figures[mode].append((cpu, wall))
    for comm in viewers:
        await comm.disconnect()
    return figures


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench dispatch", description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=5, help="one-message events per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per mode")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scs-bench-dispatch-") as folder:
        setup_django(Path(folder))
        figures = asyncio.run(run(args.viewers, args.events, args.rounds))
    frames = args.viewers * args.events
    result = {
        mode: {"cpu_s_per_1000_frames": [round(cpu / frames * 1000, 4) for cpu, _ in samples],
               "delivery_ms": summary_ms([wall for _, wall in samples])}
        for mode, samples in figures.items()
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.viewers} viewers, {args.events} events a round, {args.rounds} rounds each (alternating)")
    rows = []
    for mode, data in result.items():
        cpu = sorted(data["cpu_s_per_1000_frames"])
        rows.append([mode, cpu[len(cpu) // 2], cpu[0], cpu[-1], data["delivery_ms"]["p50"], data["delivery_ms"]["max"]])
    print(table(["dispatch", "CPU s/1000 frames p50", "min", "max", "round ms p50", "max"], rows))
    return 0
