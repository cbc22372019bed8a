"""Resources: a session as its reader sees it, its newest messages, an agent's own memory, and what this server is.

The reader is identified by ``Authorization: Bearer <token>``, or by the agent key that admitted
the client (``SCS_AGENT_KEY`` over stdio; see ``auth.reader``); the same visibility rule as the
tools applies. ``session://{id}/messages/{limit}`` read with the shared key and no token shows
public messages only, as in 1.1.
``server://info`` and ``docs://tools`` (also under shared-context-server 1.1's URIs,
``server://info/default`` and ``docs://tools/default``) describe the server and need no token.
"""

import json
import logging
from importlib import metadata

from django.db.models import Count
from fastmcp.exceptions import ResourceError

from mcp_sidecar.app import TOOL_PERMISSIONS, mcp, orm_call
from mcp_sidecar.auth import reader
from mcp_sidecar.tools.sessions import session_record
from realtime import audit, conf, memory, operations, reads
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError
from realtime.models import Visibility

RECENT = 100
MAX_RECENT = 1000  # session://{id}/messages/{limit}: a larger limit is lowered to this (1.1 lowered to 500)


def refuse_read(exc):
    # A refused read is the caller's mistake: not worth a traceback in the log.
    raise ResourceError(f"{exc.code}: {exc.message}. {exc.hint}".strip(), log_level=logging.INFO) from None


def resource_errors(fn):
    """Fresh DB connection state; an OperationError becomes a resource error naming its code."""
    return orm_call(fn, refuse_read)


@mcp.resource("session://{session_id}", mime_type="application/json", name="session")
@resource_errors
def session_resource(session_id: str) -> str:
    """A session: its details, its newest messages you may read (up to 100, oldest first) and statistics.

    The messages stop at the read budget; has_more says older ones exist.
    """
    viewer = reader()
    session = operations.get_session(session_id)
    visible = operations.visible_messages(viewer, session.id)
    recent, has_more = reads.page(visible.order_by("-seq"), RECENT)
    recent.reverse()
    by_visibility = dict(visible.order_by().values_list("visibility").annotate(n=Count("pk")))
    senders = dict(visible.order_by().values_list("sender").annotate(n=Count("pk")))
    return json.dumps({
        "session": session_record(session),
        "messages": [message_record(m) for m in recent],
        "has_more": has_more,
        "statistics": {
            "visible_messages": sum(by_visibility.values()),
            "by_visibility": by_visibility,
            "by_sender": senders,
            "last_seq": session.last_seq,
        },
    })


@mcp.resource("agent://{agent_id}/memory", mime_type="application/json", name="agent-memory")
@resource_errors
def agent_memory_resource(agent_id: str) -> str:
    """Your own private memory (unexpired entries, global and per session). Only readable by that agent."""
    viewer = reader()
    if viewer.id != agent_id:
        audit.record("permission_denied", viewer.id, resource="agent_memory", target_agent=agent_id[:100])
        raise OperationError(
            ErrorCode.PERMISSION_DENIED, "an agent's memory is readable only by that agent",
            f"Read agent://{viewer.id}/memory instead.",
        )
    return json.dumps(memory.agent_memory(agent_id))


@mcp.resource("session://{session_id}/messages/{limit}", mime_type="application/json", name="session-messages")
@resource_errors
def session_messages_resource(session_id: str, limit: str) -> str:
    """The newest ``limit`` messages of a session that you may read, newest first (as in 1.1), with total_count.

    limit: 1 to 1000 (more is lowered to 1000); the read budget may stop the list earlier (has_more).
    """
    try:
        wanted = min(max(int(limit), 1), MAX_RECENT)
    except ValueError:
        raise OperationError(ErrorCode.INVALID_ARGUMENT, f"limit must be a whole number, got {limit[:20]!r}",
                             f"Read session://{session_id}/messages/50.") from None
    viewer = reader(public_ok=True)
    session = operations.get_session(session_id)
    visible = operations.visible_messages(viewer, session.id)
    newest, has_more = reads.page(visible.order_by("-seq"), wanted)
    return json.dumps({
        "session_id": session.id,
        "session_purpose": session.purpose,
        "messages": [message_record(m) for m in newest],
        "count": len(newest),
        "total_count": visible.count(),
        "has_more": has_more,
        "requested_limit": wanted,
    })


def server_info():
    try:
        version = metadata.version("shared-context-server-django")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "unknown"
    return {
        "server_info": {
            "name": "shared-context-server-django", "version": version,
            "description": "A shared workspace for AI agents (MCP) that people watch live in the browser.",
            "capabilities": ["tools", "resources", "prompts", "resource_templates"],
            "transports": ["streamable-http", "stdio"],
            "compatible_with": "shared-context-server 1.1 tool names, arguments and resources",
        },
        "tools": {"count": len(TOOL_PERMISSIONS), "names": sorted(TOOL_PERMISSIONS),
                  "authentication": "authenticate_agent returns a JWT; pass it as auth_token or "
                                    "Authorization: Bearer. Clients are admitted by an X-API-Key header."},
        "features": {
            "visibility_control": list(Visibility.values),
            "live_viewing": "WebSocket /ws/<session_id>/ on the web server, every message in seq order",
            "agent_memory": "private, global or per session, with expiry",
            "context_search": "RapidFuzz fuzzy search",
        },
        "limits": {"content_chars": conf.get("SCS_MAX_CONTENT_LENGTH"),
                   "read_bytes": conf.get("SCS_MAX_READ_BYTES"),
                   "tool_calls_per_second": conf.get("SCS_TOOL_RATE")},
    }


@mcp.resource("server://info", mime_type="application/json", name="server-info")
def server_info_resource() -> str:
    """What this server is: name, version, transports, tools, visibility levels and limits. Needs no token."""
    return json.dumps(server_info())


@mcp.resource("server://info/{_name}", mime_type="application/json", name="server-info-1.1")
def server_info_legacy_resource(_name: str) -> str:
    """``server://info`` under the URI shared-context-server 1.1 used (``server://info/default``)."""
    return json.dumps(server_info())


async def tools_documentation(name=None):
    tools = {tool.name: tool for tool in await mcp.list_tools()}
    if name in tools:
        tools = {name: tools[name]}
    return {"tools_documentation": {
        "total_tools": len(tools),
        "getting_started": [
            "1. authenticate_agent(agent_id, agent_type) with your key in the X-API-Key header; keep the token.",
            "2. create_session(purpose) and share the session_id.",
            "3. add_message / get_messages(since_seq=...) with auth_token=<token>.",
            "4. set_memory / get_memory for your own notes; search_context to find earlier work.",
        ],
        "tools": {
            tool_name: {
                "description": tool.description,
                "permission": TOOL_PERMISSIONS.get(tool_name),
                "parameters": {
                    param: {"type": spec.get("type", spec.get("anyOf")), "description": spec.get("description", "")}
                    for param, spec in (tool.parameters or {}).get("properties", {}).items()
                },
                "required": (tool.parameters or {}).get("required", []),
            }
            for tool_name, tool in sorted(tools.items())
        },
    }}


@mcp.resource("docs://tools", mime_type="application/json", name="tools-documentation")
async def tools_documentation_resource() -> str:
    """Every tool: what it does, the permission it needs, its parameters. Needs no token."""
    return json.dumps(await tools_documentation())


@mcp.resource("docs://tools/{name}", mime_type="application/json", name="tool-documentation")
async def tool_documentation_resource(name: str) -> str:
    """One tool's documentation (``docs://tools/add_message``); any other name (1.1's ``default``): every tool."""
    return json.dumps(await tools_documentation(name))
