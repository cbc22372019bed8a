"""``bench_noop``: a tool that does nothing, registered only when ``SCS_BENCH_NOOP_TOOL=1``.

``python -m bench e2e`` calls it to measure the floor: what any MCP tool call
costs (HTTP, JSON-RPC, argument validation, worker thread) before doing work.
"""

from mcp_sidecar.app import mcp


@mcp.tool
def bench_noop() -> dict:
    """Do nothing and return at once (benchmark floor)."""
    return {"success": True}
