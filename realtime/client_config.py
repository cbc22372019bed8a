"""Ready-to-paste MCP client configurations for the sidecar."""

import json
import shlex

from realtime import conf

CLIENTS = ("claude", "cursor", "vscode")


def mcp_url(host=None, port=None):
    """The sidecar's MCP URL (``SCS_HOST``/``SCS_MCP_PORT`` unless given)."""
    host = conf.get("SCS_HOST") if host is None else host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{conf.get('SCS_MCP_PORT') if port is None else port}/mcp/"


def config_for(client, name="shared-context", url=None, key=None):
    """The configuration text for ``client`` (one of CLIENTS), for ``url`` (default: ``mcp_url()``).

    ``key`` is the X-API-Key the client sends: an agent's own key, or by default the shared ``SCS_API_KEY``.
    """
    url, key = url or mcp_url(), key or conf.get("SCS_API_KEY")
    headers = {"X-API-Key": key}
    if client == "claude":
        command = ["claude", "mcp", "add", "--transport", "http", name, url, "--header", f"X-API-Key: {key}"]
        return shlex.join(command)
    if client == "cursor":  # ~/.cursor/mcp.json
        return json.dumps({"mcpServers": {name: {"url": url, "headers": headers}}}, indent=2)
    if client == "vscode":  # .vscode/mcp.json
        return json.dumps({"servers": {name: {"type": "http", "url": url, "headers": headers}}}, indent=2)
    raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")
