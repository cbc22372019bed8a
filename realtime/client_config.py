"""Ready-to-paste MCP client configurations for the sidecar.

Every client reaches the sidecar over streamable HTTP with an X-API-Key header, except Claude
Desktop, whose configuration file starts local (stdio) servers only: it runs ``scs-django mcp``
(the installed package's command) on this machine, with the agent key in ``SCS_AGENT_KEY``.
"""

import json
import shlex

from django.conf import settings

from realtime import conf, credentials

CLIENTS = ("claude", "claude-desktop", "cursor", "windsurf", "vscode", "gemini", "codex")
TITLES = {
    "claude": "Claude Code (run in a shell)",
    "claude-desktop": "Claude Desktop (claude_desktop_config.json; stdio, on this machine)",
    "cursor": "Cursor (~/.cursor/mcp.json)",
    "windsurf": "Windsurf (~/.codeium/windsurf/mcp_config.json)",
    "vscode": "VS Code (.vscode/mcp.json)",
    "gemini": "Gemini CLI (~/.gemini/settings.json)",
    "codex": "Codex (~/.codex/config.toml)",
}


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
    if client == "windsurf":
        return json.dumps({"mcpServers": {name: {"serverUrl": url, "headers": headers}}}, indent=2)
    if client == "gemini":
        return json.dumps({"mcpServers": {name: {"httpUrl": url, "headers": headers}}}, indent=2)
    if client == "codex":
        # JSON strings are TOML basic strings.
        return "\n".join([f"[mcp_servers.{json.dumps(name)}]", f"url = {json.dumps(url)}",
                          f'http_headers = {{ "X-API-Key" = {json.dumps(key)} }}'])
    if client == "claude-desktop":
        return json.dumps({"mcpServers": {name: stdio_server(key)}}, indent=2)
    raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")


def stdio_server(key):
    """``scs-django mcp`` over stdio on this machine: the same data folder, and the agent key if there is one."""
    env = {}
    data_dir = getattr(settings, "SCS_DATA_DIR", None)
    if data_dir:
        env["SCS_DATA_DIR"] = str(data_dir)
    if key and key.startswith(credentials.KEY_PREFIX):
        env["SCS_AGENT_KEY"] = key  # else the stdio process is admitted as the shared key, read from the data folder
    return {"command": "scs-django", "args": ["mcp"], "env": env}
