"""Argument types shared by the tools: the schema an agent sees is the validation we run."""

from typing import Annotated, Any, Literal

from pydantic import Field

from realtime import conf

AuthToken = Annotated[
    str | None,
    Field(description="Token from authenticate_agent (or send it as Authorization: Bearer).", max_length=4096),
]
SessionId = Annotated[
    str, Field(description="A session id as create_session returns it: 'session_' + 16 hex characters.",
               min_length=1, max_length=64),
]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description=f"Any JSON object, at most {conf.get('SCS_MAX_METADATA_BYTES')} bytes once encoded."),
]
VisibilityLevel = Literal["public", "private", "agent_only", "admin_only"]
