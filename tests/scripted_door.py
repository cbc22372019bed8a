"""A stand-in for Daphne's broadcast door on a real port, answering each request as a script says.

For the HTTP client's own tests (``realtime.broadcast_client``): what it sends, how it reads each kind of answer,
and how it moves on when a Daphne answers badly or not at all.
"""

import contextlib
import json
import socket

from aiohttp import web

DROP = "drop"  # close the connection without answering


@contextlib.asynccontextmanager
async def scripted_door(*answers):
    """``(base_url, seen)``: a server answering its n-th request with ``answers[n]`` (the last one for the rest).

    An answer is a status, ``(status, json)``, ``(status, json, headers)``, or ``DROP``. ``seen`` collects
    ``(path, body as JSON)`` of each request, in order.
    """
    seen = []

    async def answer(request):
        seen.append((request.path, json.loads(await request.read())))
        reply = answers[min(len(seen), len(answers)) - 1]
        if reply == DROP:
            request.transport.close()
            return web.Response(status=500)  # never reaches the client: its connection is gone
        status, body, headers = (*reply, {})[:3] if isinstance(reply, tuple) else (
            reply, {"success": status_ok(reply)}, {})
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    port = sock.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def status_ok(status):
    return 200 <= status < 300
