"""Running the sidecar: Django set-up, then MCP over streamable HTTP or stdio."""

import errno
import logging
import socket

import anyio
from starlette.middleware import Middleware

logger = logging.getLogger(__name__)


class StartupError(Exception):
    """The sidecar cannot start; the message is the one line to print."""


def bind(host, port):
    """A listening socket on host:port, or StartupError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use (set SCS_MCP_PORT or --port)") from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def keep_database_connections(max_age=60):
    """Reuse each worker thread's database connection across tool calls (unless configured already).

    Tools run on anyio's pool of reused threads, not a thread per request, so Django's advice
    to disable persistent connections under ASGI does not apply; reconnecting per call (with
    SQLite's PRAGMAs) cost ~0.6 ms of CPU per add_message. Broken connections are still dropped.
    """
    from django.db import connections

    for alias in connections:
        if not connections.settings[alias].get("CONN_MAX_AGE"):
            connections.settings[alias]["CONN_MAX_AGE"] = max_age


async def run(transport, host, port, watch=()):
    from mcp_sidecar import stdio_watch, tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp
    from mcp_sidecar.auth import ApiKeyMiddleware, use_stdio_key
    from realtime import collector, conf

    keep_database_connections()
    # Start-up is over (Django, every tool registered): freeze what it built, collect young objects less often.
    collector.tune(freeze=True)

    if transport == "stdio":
        try:
            await anyio.to_thread.run_sync(use_stdio_key)
            if watch:
                mcp.add_middleware(await anyio.to_thread.run_sync(stdio_watch.watch_at_start, watch))
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        await mcp.run_stdio_async(show_banner=False, log_level="WARNING")
        return
    sock = bind(host, port)
    logger.info("MCP sidecar on http://%s:%d/mcp/", host, port)
    await mcp.run_http_async(
        transport="http",
        show_banner=False,
        log_level="WARNING",
        host=host,
        port=port,
        path="/mcp/",
        middleware=[Middleware(ApiKeyMiddleware)],
        # Stateless: no MCP session kept in this process, so any sidecar behind one URL can answer any request.
        stateless_http=conf.get("SCS_MCP_STATELESS"),
        # Each call is answered with one JSON body rather than an event stream: no tool sends anything during a
        # call (pushes go out on the client's GET stream), and the stream's task group, channel and timer cost
        # 0.2-0.4 ms of CPU per call. A waiting call sends nothing until it answers; see the README's proxy notes.
        json_response=True,
        uvicorn_config={"loop": "none", "http": "httptools", "access_log": False, "log_level": "warning"},
        sockets=[sock],
    )
