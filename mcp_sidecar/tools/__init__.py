"""Tool modules, grouped by subject; importing this package registers every tool."""

import os

from mcp_sidecar import prompts, resources  # noqa: F401
from mcp_sidecar.tools import admin, agents, guidance, memory, messages, search, sessions, waiting  # noqa: F401

if os.environ.get("SCS_BENCH_NOOP_TOOL") == "1":  # the floor `python -m bench e2e` measures
    from mcp_sidecar.tools import bench  # noqa: F401
