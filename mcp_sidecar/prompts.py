"""Prompts: setting up a collaboration, and looking into a session that misbehaves."""

from django.db import close_old_connections
from django.db.models import Count
from fastmcp.exceptions import PromptError

from mcp_sidecar.app import mcp
from mcp_sidecar.auth import reader
from realtime import operations, reads
from realtime.errors import OperationError

RECENT = 10


@mcp.prompt(name="setup-collaboration")
def setup_collaboration(purpose: str, agent_types: str | None = None, project_name: str | None = None) -> str:
    """Step-by-step instructions to start a multi-agent collaboration on this server.

    agent_types: comma-separated agent types taking part (e.g. "claude,gemini").
    """
    types = [t.strip() for t in (agent_types or "claude").split(",") if t.strip()] or ["claude"]
    metadata = {"project": project_name} if project_name else {}
    lines = [
        f"Set up a shared-context collaboration for: {purpose}",
        "",
        "1. Each participant calls authenticate_agent with its own agent_id and its agent_type "
        f"({', '.join(types)}), and keeps the token it returns.",
        f"2. One participant calls create_session(purpose={purpose!r}, metadata={metadata!r}) and shares "
        "the session_id with the others; they find it with list_sessions too.",
        "3. Work in a loop: wait_for_messages(session_id, since_seq=cursor) blocks until something new arrives "
        "(start with cursor 0; pass the last_seq it returns as the next cursor). Reply with "
        "add_message(session_id, content, visibility): public for everyone, agent_only for agents of your own "
        "type, private for yourself. Then mark_read(session_id, seq), or pass mark_read=true to wait_for_messages.",
        "4. Mention a participant as @agent_id to reach it; get_inbox(since=cursor, wait=...) returns the messages "
        "that mention you in any session (pass its cursor as since next time).",
        "5. Clients that take pushed notifications (Claude Code channels) call watch_session(session_id) instead "
        "of waiting, and unwatch_session(session_id) when done.",
        "6. Reply to a message with parent_message_id; read a thread with get_messages(thread_id=...). Catch up "
        "with get_messages(unread_only=true); find earlier decisions with search_context.",
        "7. Keep your own progress with set_memory(key, value, session_id=...); it is private to you.",
        "8. When a tool answers TOKEN_EXPIRED, call refresh_token(current_token) and carry on.",
    ]
    if len(types) > 1:
        lines.append("")
        lines.append("Agents of different types cannot read each other's agent_only messages: "
                     "use public for anything the whole group needs.")
    return "\n".join(lines)


@mcp.prompt(name="debug-session")
def debug_session(session_id: str) -> str:
    """A summary of a session as you may see it (activity, senders, recent messages) to troubleshoot it.

    Identifies you by Authorization: Bearer (or your agent key); only messages you may read are counted or shown.
    """
    close_old_connections()
    try:
        viewer = reader()
        session = operations.get_session(session_id)
    except OperationError as exc:
        raise PromptError(f"{exc.code}: {exc.message}. {exc.hint}".strip()) from None
    visible = operations.visible_messages(viewer, session.id)
    by_sender = dict(visible.order_by().values_list("sender").annotate(n=Count("pk")))
    by_visibility = dict(visible.order_by().values_list("visibility").annotate(n=Count("pk")))
    recent, _ = reads.page(visible.order_by("-seq"), RECENT)
    lines = [
        f"Debug session {session.id} ({'active' if session.is_active else 'closed'})",
        f"Purpose: {session.purpose}",
        f"Created by {session.created_by}; last seq {session.last_seq}; "
        f"{sum(by_sender.values())} messages visible to you.",
        "By visibility: " + (", ".join(f"{k} {v}" for k, v in sorted(by_visibility.items())) or "none"),
        "By sender: " + (", ".join(f"{k} {v}" for k, v in sorted(by_sender.items())) or "none"),
        "",
        f"Newest {len(recent)} messages you may read:",
    ]
    lines += [f"- #{m.seq} {m.sender} ({m.visibility}): {m.content[:120]}" for m in reversed(recent)]
    lines += [
        "",
        "Check: is every participant using this session_id? Are messages hidden from some readers by their "
        "visibility? Do gaps in seq mean messages you may not read? Look for errors in the replies above "
        "and suggest the next step.",
    ]
    return "\n".join(lines)
