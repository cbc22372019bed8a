"""The FastMCP server object, its lifespan (the publisher) and the ``agent_tool`` decorator."""

import contextlib
import functools
import logging
import time

from django.db import close_old_connections
from fastmcp import FastMCP
from fastmcp.exceptions import ValidationError
from fastmcp.server.middleware import Middleware
from fastmcp.tools.base import ToolResult
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_sidecar.metrics import tool_metrics
from realtime.errors import OperationError
from realtime.publisher import get_publisher
from realtime.shared_secret import holds_secret

logger = logging.getLogger(__name__)

@contextlib.asynccontextmanager
async def lifespan(server):
    """Run this process's publisher (queued sender, cursor marks, sweeper) while the server runs."""
    publisher = get_publisher()
    await publisher.start()
    try:
        yield {}
    finally:
        await publisher.stop()


def _validation_message(exc):
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "errors"):
        parts = []
        for error in cause.errors():
            where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(exc).splitlines()[0]


class StructuredErrors(Middleware):
    """Bad arguments become ``{"success": false, "error", "code", "hint"}``; every call is timed."""

    async def on_call_tool(self, context, call_next):
        started = time.perf_counter()
        ok = False
        try:
            result = await call_next(context)
            structured = result.structured_content or {}
            ok = structured.get("success", True) is not False
            return result
        except ValidationError as exc:
            error = OperationError(
                "INVALID_ARGUMENT", _validation_message(exc),
                "Check the argument types and limits in the tool's input schema.",
            )
            return ToolResult(structured_content=error.as_dict())
        finally:
            tool_metrics.record(context.message.name, time.perf_counter() - started, ok)


mcp = FastMCP(
    "shared-context-server",
    instructions=(
        "A shared workspace for agents. Call authenticate_agent first and pass the token it returns "
        "as auth_token to every other tool. Sessions hold numbered messages with a visibility level: "
        "public (everyone), private (only you), agent_only (agents of your type), admin_only (admins)."
    ),
    lifespan=lifespan,
    middleware=[StructuredErrors()],
)


def orm_call(fn, on_error):
    """Wrap a sync tool or resource body: fresh DB connection state; an OperationError goes to ``on_error``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        except OperationError as exc:
            return on_error(exc)

    return wrapper


def agent_tool(fn):
    """Register ``fn`` as a tool; an OperationError becomes its structured result."""
    return mcp.tool(orm_call(fn, lambda exc: exc.as_dict()))


@mcp.custom_route("/health", methods=["GET"])
async def health(request: Request):
    """``{"status": "ok"}`` for anyone; the publisher's counters (and its last error, which names URLs)
    only with ``Authorization: Bearer <SCS_BROADCAST_SECRET>``. They keep the key ``bridge``, which
    monitoring may read."""
    if holds_secret(request.headers.get("authorization", "")):
        return JSONResponse({"status": "ok", "bridge": get_publisher().stats()})
    return JSONResponse({"status": "ok"})
