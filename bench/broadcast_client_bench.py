"""What one POST to Daphne's broadcast door costs the publisher: CPU per request, aiohttp against httpx.

``python -m bench broadcast_client [--requests 4000] [--rounds 3]``

A stand-in door in another process answers every ``POST /broadcast/`` with 202 at once, so what is measured is
the sending process alone: ``realtime.broadcast_client.BroadcastClient.send_many`` (aiohttp, what the publisher
uses), against the same request from an ``httpx.AsyncClient`` with the same pool settings (what it used before).
Each is timed over ``--requests`` sequential requests of one one-event batch, in alternating rounds. The aiohttp
side also pays ``send_many``'s own work (the body built and the answer read per request), which the httpx side
does not: the gap is, if anything, understated.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import time

import httpx

from bench import table
from realtime.broadcast_client import BroadcastClient, batch_bodies

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
    uvloop = None

EVENT = {"type": "message", "session_id": "session_00000000000000b1", "seq": 1, "sender": "bench",
         "sender_type": "claude", "visibility": "public", "content": "x" * 300, "metadata": {}}
BATCH = [("session_00000000000000b1", [EVENT])]


def door(sock):
    """The stand-in: 202 to every request, from a plain asyncio server on ``sock``."""

    class Door(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end].decode("latin-1").lower()
                length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                               if line.startswith("content-length:")), 0)
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length:]
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 16\r\n\r\n{\"success\":true}")

    async def serve():
        server = await asyncio.get_running_loop().create_server(Door, sock=sock)
        await server.serve_forever()

    asyncio.run(serve())


async def with_aiohttp(url, requests):
    client = BroadcastClient(url, "bench-secret")
    try:
        await client.send_many(BATCH)  # connect outside the timing
        started = time.process_time()
        for _ in range(requests):
            (result,) = await client.send_many(BATCH)
            assert result.outcome == "sent", result
        return time.process_time() - started
    finally:
        await client.aclose()


async def with_httpx(url, requests):
    ((body, _),) = batch_bodies(BATCH)
    options = BroadcastClient(url, "bench-secret")._options()
    async with httpx.AsyncClient(**options) as client:
        await client.post(f"{url}/broadcast/", content=body)
        started = time.process_time()
        for _ in range(requests):
            response = await client.post(f"{url}/broadcast/", content=body)
            assert response.status_code == 202, response
        return time.process_time() - started


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench broadcast_client", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per client per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the clients alternating (default 3)")
    args = parser.parse_args(argv or [])
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = multiprocessing.get_context("spawn").Process(target=door, args=(sock,), daemon=True)
    server.start()
    sock.close()
    runner = uvloop.run if uvloop else asyncio.run
    seconds = {"aiohttp (BroadcastClient)": [], "httpx.AsyncClient": []}
    try:
        for _ in range(args.rounds):
            seconds["aiohttp (BroadcastClient)"].append(runner(with_aiohttp(url, args.requests)))
            seconds["httpx.AsyncClient"].append(runner(with_httpx(url, args.requests)))
    finally:
        with contextlib.suppress(Exception):
            server.kill()
        server.join(5)
    rows = [(name, *(round(s * 1000 / args.requests, 3) for s in (min(runs), sorted(runs)[len(runs) // 2])))
            for name, runs in seconds.items()]
    print(table(["client", "best CPU ms / request", "median CPU ms / request"], rows))
    return 0
