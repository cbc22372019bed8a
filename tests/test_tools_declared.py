"""What each tool declares (the permission it needs, the result it gives) is what the server publishes."""

import asyncio
import re
from pathlib import Path

import pytest

from mcp_sidecar import tools  # noqa: F401  (registers every tool)
from mcp_sidecar.app import TOOL_PERMISSIONS, agent_tool, mcp, needs
from realtime.tokens import PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent


def listed_tools():
    return {tool.name: tool.to_mcp_tool() for tool in asyncio.run(mcp.list_tools())}


def test_every_listed_tool_declares_its_permission_and_publishes_it():
    listed = listed_tools()
    assert set(listed) == set(TOOL_PERMISSIONS)
    assert {None, *PERMISSIONS} == set(TOOL_PERMISSIONS.values())
    for name, tool in listed.items():
        assert tool.meta["permission"] == (TOOL_PERMISSIONS[name] or "none"), name
        assert tool.description.endswith(needs(TOOL_PERMISSIONS[name])), name
        schema = tool.output_schema
        assert schema["type"] == "object" and len(schema["anyOf"]) == 2, name
        if TOOL_PERMISSIONS[name] is not None:
            assert "auth_token" in tool.input_schema["properties"], name
        # What the tool body is handed (the caller) is not an argument clients see.
        assert not {"agent", "claims"} & set(tool.input_schema["properties"]), name


def test_the_readme_table_says_what_each_tool_needs():
    text = (ROOT / "README.md").read_text()
    table = text.split("### The whole toolset", 1)[1].split("\n\n", 3)[2]
    said = {}
    for row in table.splitlines()[2:]:
        names_cell, needs_cell, _ = row.strip("|").split(" | ", 2)
        names = re.findall(r"`(\w+)", names_cell)
        needs = needs_cell.split(" / ")
        assert len(needs) == len(names), row
        said.update(zip(names, needs, strict=True))
    assert said == {name: needed or "none" for name, needed in TOOL_PERMISSIONS.items()}


def test_a_declaration_is_checked_when_the_tool_is_defined():
    with pytest.raises(ValueError, match="permission must be one of"):
        agent_tool(permission="root")
    with pytest.raises(TypeError, match="must take auth_token"):
        @agent_tool(permission="read")
        def forgets_the_token(agent) -> dict:
            return {}
    with pytest.raises(TypeError, match="takes no token"):
        @agent_tool(permission=None)
        def wants_a_caller(agent, auth_token=None) -> dict:
            return {}
    assert "forgets_the_token" not in TOOL_PERMISSIONS and "wants_a_caller" not in TOOL_PERMISSIONS
