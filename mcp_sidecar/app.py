"""The FastMCP server object, its lifespan (the publisher) and the ``agent_tool`` decorator.

``agent_tool(permission=...)`` is where each tool declares the permission it needs; the
declaration is enforced before the tool's body runs, listed in ``TOOL_PERMISSIONS`` and
published in the tool's ``_meta`` in ``tools/list`` (``{"permission": "write"}``; ``"none"`` for the
tools that take no token: JSON there has no null).
"""

import contextlib
import functools
import inspect
import logging
import time
from typing import get_type_hints

from channels.db import DatabaseSyncToAsync
from django.db import close_old_connections
from fastmcp import FastMCP
from fastmcp.exceptions import ValidationError
from fastmcp.server.middleware import Middleware
from fastmcp.tools.base import ToolResult
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_sidecar import push
from mcp_sidecar.auth import authorize, current_claims
from mcp_sidecar.metrics import tool_metrics
from mcp_sidecar.results import output_schema
from realtime import operations, wake_stream
from realtime.errors import ErrorCode, OperationError
from realtime.publisher import get_publisher
from realtime.shared_secret import holds_secret
from realtime.tokens import PERMISSIONS

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lifespan(server):
    """Run this process's publisher (queued sender, cursor marks, sweeper) and its wake stream (what wakes
    waiting agents when other processes store messages) while the server runs."""
    publisher = get_publisher()
    stream = wake_stream.get_stream()
    await publisher.start()
    await stream.start()
    try:
        yield {}
    finally:
        await stream.stop()
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
                ErrorCode.INVALID_ARGUMENT, _validation_message(exc),
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
    # Claude Code listens for notifications/claude/channel from servers that declare this (mcp_sidecar.push).
    experimental_capabilities={push.CHANNEL_CAPABILITY: {}},
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


# Tool name → the permission it needs ("read", "write", "admin"), or None: it takes no token (it hands them out).
TOOL_PERMISSIONS = {}
INJECTED = ("agent", "claims")  # what a tool body may ask for: the calling agent (a Viewer), its token's claims


def needs(permission):
    """The sentence ending a tool's description, from its declaration."""
    return "Needs no token." if permission is None else f"Needs the {permission} permission."


def agent_tool(*, permission):
    """Register a tool that needs ``permission`` (one of realtime.tokens.PERMISSIONS, or None for no token).

    Before the body runs, the token (``auth_token`` or ``Authorization: Bearer``) is verified and must
    hold ``permission``; the body gets the caller as its ``agent`` parameter (and ``claims`` if it names
    one), which clients do not see; the tool's description ends with what it needs. The body's return
    annotation is the success half of the tool's outputSchema (``mcp_sidecar.results``); an
    OperationError becomes the ToolFailure half. A sync body runs in a worker thread with fresh database
    connection state; an async one (a tool that waits) on the event loop, doing its own database work in threads.
    """
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"permission must be one of {PERMISSIONS} or None, not {permission!r}")

    def register(fn):
        signature = inspect.signature(fn)
        injected = [name for name in INJECTED if name in signature.parameters]
        if permission is None and injected:
            raise TypeError(f"{fn.__name__} takes no token, so it cannot ask for {injected}")
        if permission is not None and "auth_token" not in signature.parameters:
            raise TypeError(f"{fn.__name__} needs '{permission}': it must take auth_token")
        hints = get_type_hints(fn, include_extras=True)
        success_type = hints.pop("return")

        def admit_call(arguments):
            if permission is not None:
                claims = current_claims(arguments.get("auth_token"))
                given = {"agent": authorize(claims, permission), "claims": claims}
                arguments.update((name, given[name]) for name in injected)
            return arguments

        if inspect.iscoroutinefunction(fn):
            # A tool that waits: the token is checked (a few queries) in a worker thread, the body runs on the
            # event loop, and no thread is held while it waits.
            async def checked(**arguments):
                try:
                    arguments = await DatabaseSyncToAsync(admit_call, thread_sensitive=False)(arguments)
                    return await fn(**arguments)
                except OperationError as exc:
                    return exc.as_dict()
        else:
            def checked(**arguments):
                return fn(**admit_call(arguments))

        # What FastMCP (and so the client) sees: the arguments without the injected ones, returning a plain
        # dict (sent as it is, not filtered through the success type: that would drop an error's fields).
        checked.__signature__ = signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name not in injected], return_annotation=dict)
        checked.__annotations__ = {name: hint for name, hint in hints.items() if name not in injected} | {
            "return": dict}
        for attribute in ("__module__", "__name__", "__qualname__"):
            setattr(checked, attribute, getattr(fn, attribute))
        checked.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\n{needs(permission)}"
        TOOL_PERMISSIONS[fn.__name__] = permission
        body = checked if inspect.iscoroutinefunction(fn) else orm_call(checked, lambda exc: exc.as_dict())
        return mcp.tool(body, output_schema=output_schema(success_type), meta={"permission": permission or "none"})

    return register


@mcp.custom_route("/health", methods=["GET"])
async def health(request: Request):
    """``{"status": "ok"}`` for anyone; the publisher's counters (and its last error, which names URLs),
    the wake hub's and stream's (``wake``) and the messages stored and the transactions they took (``writes``)
    only with ``Authorization: Bearer <SCS_BROADCAST_SECRET>``.
    The publisher's keep the key ``bridge``, which monitoring may read."""
    if holds_secret(request.headers.get("authorization", "")):
        writes = operations.message_writes
        return JSONResponse({"status": "ok", "bridge": get_publisher().stats(), "wake": wake_stream.stats(),
                             "writes": {"messages": writes.items, "transactions": writes.batches}, **push.stats()})
    return JSONResponse({"status": "ok"})
