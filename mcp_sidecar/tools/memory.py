"""Memory tools: each agent's private key/value store, global or per session, with a TTL."""

from typing import Annotated, Any, Literal, TypedDict

from django.utils import timezone
from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, Metadata
from mcp_sidecar.results import JsonObject, MemoryFields, Timestamp
from realtime import conf, memory
from realtime.timestamps import isoformat
from realtime.visibility import Viewer

Key = Annotated[str, Field(min_length=1, max_length=255, pattern=memory.KEY_PATTERN, description=(
    "The memory key: 1-255 of letters, digits and _ . : / @ + = - (no spaces), e.g. 'task:42/state'."))]
MemorySession = Annotated[str | None, Field(max_length=64, description=(
    "A session id to scope the entry to that session; leave out for your global memory. "
    "Global and session memory are separate."))]


class MemoryStored(TypedDict):
    success: Literal[True]
    key: str
    scope: Literal["global", "session"]
    session_scoped: bool
    session_id: str | None
    expires_at: Timestamp | None
    stored_at: Timestamp


class MemoryRead(MemoryFields):
    success: Literal[True]
    value: Any
    metadata: JsonObject


class MemoryListed(MemoryFields):
    value_size: int


class MemoryList(TypedDict):
    success: Literal[True]
    entries: list[MemoryListed]
    count: int
    has_more: bool
    scope_filter: str


@agent_tool(permission="write")
def set_memory(
    agent: Viewer,
    key: Key,
    value: Annotated[Any, Field(description=(
        f"Any JSON value (object, list, string, number, true/false, null), at most "
        f"{conf.get('SCS_MAX_MEMORY_VALUE_BYTES')} bytes once encoded."))],
    session_id: MemorySession = None,
    expires_in: Annotated[int | None, Field(ge=0, le=conf.get("SCS_MAX_MEMORY_TTL"), description=(
        "Seconds until the entry expires and disappears; leave out or 0 to keep it."))] = None,
    metadata: Metadata = None,
    overwrite: Annotated[bool, Field(description=(
        "Replace an existing value under this key. With false, an existing key is MEMORY_KEY_EXISTS."))] = True,
    auth_token: AuthToken = None,
) -> MemoryStored:
    """Remember a value under a key in your private memory.

    Only you can read it back (get_memory, list_memory); no other agent can see it.
    """
    entry = memory.set_memory(agent.id, key, value, session_id=session_id, expires_in=expires_in,
                              metadata=metadata, overwrite=overwrite)
    return {
        "success": True,
        "key": entry.key,
        "scope": "session" if entry.session_id else "global",
        "session_scoped": entry.session_id is not None,
        "session_id": entry.session_id,
        "expires_at": isoformat(entry.expires_at),
        "stored_at": isoformat(entry.updated_at or timezone.now()),
    }


@agent_tool(permission="read")
def get_memory(
    agent: Viewer, key: Key, session_id: MemorySession = None, auth_token: AuthToken = None,
) -> MemoryRead:
    """Read back a value you stored with set_memory (same key and same session_id, or none for global).

    Expired entries are gone: MEMORY_NOT_FOUND.
    """
    entry = memory.get_memory(agent.id, key, session_id=session_id)
    return {"success": True, **memory.entry_record(entry)}


@agent_tool(permission="read")
def list_memory(
    agent: Viewer,
    session_id: Annotated[str | None, Field(max_length=64, description=(
        "Leave out for your global memory; a session id for that session's; 'all' for both."))] = None,
    prefix: Annotated[str | None, Field(max_length=255, description="Only keys starting with this.")] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="How many entries at most.")] = 50,
    auth_token: AuthToken = None,
) -> MemoryList:
    """List the keys in your private memory, most recently updated first (values left out; see value_size).

    has_more says more entries match than were returned (raise limit, or narrow with prefix).
    """
    entries, has_more = memory.list_memory(agent.id, session_id=session_id, prefix=prefix, limit=limit)
    return {"success": True, "entries": entries, "count": len(entries), "has_more": has_more,
            "scope_filter": session_id or "global"}


class MemoryDeleted(MemoryFields):
    success: Literal[True]
    deleted: Literal[True]


@agent_tool(permission="write")
def delete_memory(
    agent: Viewer, key: Key, session_id: MemorySession = None, auth_token: AuthToken = None,
) -> MemoryDeleted:
    """Forget a value you stored with set_memory (same key and same session_id, or none for global).

    An absent or expired key is MEMORY_NOT_FOUND.
    """
    return {"success": True, "deleted": True, **memory.delete_memory(agent.id, key, session_id=session_id)}
