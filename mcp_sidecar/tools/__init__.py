"""Tool modules, grouped by subject; importing this package registers every tool."""

import os

from mcp_sidecar import prompts, resources, subscriptions  # noqa: F401
from mcp_sidecar.tools import (  # noqa: F401
    admin,
    agents,
    guidance,
    inbox,
    memory,
    messages,
    search,
    sessions,
    waiting,
    watch,
)

if os.environ.get("SCS_BENCH_NOOP_TOOL") == "1":  # the floor `python -m bench e2e` measures
    from mcp_sidecar.tools import bench  # noqa: F401
