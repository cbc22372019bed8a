"""What the tools answer, as types: each tool's outputSchema is its success type or ``ToolFailure``.

A tool's return annotation names its success type (a TypedDict below or next to the tool);
``output_schema`` makes the schema clients see in ``tools/list`` and validate every result
against: an object that is either that success type or a ToolFailure. Both are closed
(no keys besides the declared ones), so a key a tool adds without declaring it fails
validation in the client instead of going unnoticed.
"""

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from fastmcp.utilities.json_schema import compress_schema
from pydantic import Field, TypeAdapter, WithJsonSchema

from mcp_sidecar.params import VisibilityLevel

# ISO 8601 in UTC to the microsecond, ending in Z (realtime.timestamps.isoformat).
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
JsonObject = dict[str, Any]
# A member of realtime.errors.ErrorCode. Not listed as an enum here: 35 codes in each of 14 schemas would
# add 16 KB to tools/list; tests/test_error_codes.py and tests/test_tools_output_schemas.py hold the line.
Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z_]+$", description=(
    "A stable error code; get_usage_guidance(guidance_type='troubleshooting') says what to do about each."))]


class ToolFailure(TypedDict):
    """A refused call: error says why, code is stable, hint says what to do."""

    success: Literal[False]
    error: str
    code: Code
    hint: NotRequired[str]
    retry_after: NotRequired[float]  # with RATE_LIMITED: seconds to wait


class MessageRecord(TypedDict):  # realtime.envelope.message_record

    id: int
    sender: str
    sender_type: str
    content: str
    visibility: VisibilityLevel
    metadata: JsonObject
    parent_message_id: int | None
    timestamp: Timestamp
    seq: int


class MessagePage(TypedDict):
    success: Literal[True]
    messages: list[MessageRecord]
    count: int
    has_more: bool


class MemoryFields(TypedDict):  # realtime.memory.entry_fields: an entry's key, scope and times

    key: str
    scope: Literal["global", "session"]
    session_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp | None


def _close(schema):
    """Forbid undeclared keys in every object that declares its properties (TypedDicts), recursively."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for value in schema:
            _close(value)
    return schema


def output_schema(success_type):
    """The outputSchema of a tool answering ``success_type`` or ToolFailure (MCP wants an object at the top)."""
    schema = TypeAdapter(success_type | ToolFailure).json_schema(mode="serialization")
    return compress_schema(_close({"type": "object", **schema}), prune_titles=True)
