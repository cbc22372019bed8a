"""Tool modules, grouped by subject; importing this package registers every tool."""

from mcp_sidecar.tools import agents, messages, sessions  # noqa: F401
