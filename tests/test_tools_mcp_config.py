"""``python manage.py mcp_config``: ready-to-paste client configurations with the right URL and key."""

import json
import shlex
import tomllib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

KEY = "k3y-for-config-tests-0123456789"


def run(*args):
    out = StringIO()
    with override_settings(SCS_API_KEY=KEY, SCS_HOST="0.0.0.0", SCS_MCP_PORT=24999):
        call_command("mcp_config", *args, stdout=out)
    return out.getvalue()


def test_claude_is_one_shell_command():
    argv = shlex.split(run("claude"))
    assert argv[:5] == ["claude", "mcp", "add", "--transport", "http"]
    assert "http://127.0.0.1:24999/mcp/" in argv  # a wildcard listen address becomes loopback
    assert argv[argv.index("--header") + 1] == f"X-API-Key: {KEY}"


@pytest.mark.parametrize(("client", "root", "url_field", "extra"), [
    ("cursor", "mcpServers", "url", {}), ("vscode", "servers", "url", {"type": "http"}),
    ("windsurf", "mcpServers", "serverUrl", {}), ("gemini", "mcpServers", "httpUrl", {}),
])
def test_json_clients(client, root, url_field, extra):
    config = json.loads(run(client))
    (server,) = config[root].values()
    assert server == {**extra, url_field: "http://127.0.0.1:24999/mcp/", "headers": {"X-API-Key": KEY}}


def test_codex_is_toml():
    config = tomllib.loads(run("codex"))
    assert config["mcp_servers"]["shared-context"] == {"url": "http://127.0.0.1:24999/mcp/",
                                                       "http_headers": {"X-API-Key": KEY}}


def test_claude_desktop_starts_the_stdio_server_on_the_same_data_folder(settings):
    (server,) = json.loads(run("claude-desktop"))["mcpServers"].values()
    assert server == {"command": "scs-django", "args": ["mcp"], "env": {"SCS_DATA_DIR": str(settings.SCS_DATA_DIR)}}


def test_all_prints_every_client_under_a_title():
    text = run("all")
    assert text.count(f"X-API-Key: {KEY}") == 1 and text.count(f'"X-API-Key": "{KEY}"') == 4
    assert text.count(f'"X-API-Key" = "{KEY}"') == 1
    for title in ("Claude Code", "Claude Desktop", "Cursor", "Windsurf", "VS Code", "Gemini CLI", "Codex"):
        assert f"# {title}" in text


def test_unknown_client_is_an_error():
    with pytest.raises(CommandError):
        run("emacs")


@pytest.mark.django_db
def test_an_agent_id_gets_its_own_key_in_the_configuration():
    from realtime import credentials

    text = run("claude", "--agent-id", "reviewer-1", "--agent-type", "claude")
    comment, command = text.strip().splitlines()
    argv = shlex.split(command)
    key = argv[argv.index("--header") + 1].removeprefix("X-API-Key: ")
    assert key != KEY and key.startswith("scs_") and "reviewer-1" in comment
    admitted = credentials.admit(key)
    assert (admitted.agent_id, admitted.agent_type, admitted.permissions) == ("reviewer-1", "claude",
                                                                            ("read", "write"))


@pytest.mark.django_db
def test_claude_desktop_with_an_agent_id_gets_the_key_as_scs_agent_key():
    from realtime import credentials

    (server,) = json.loads(run("claude-desktop", "--agent-id", "desk", "--agent-type", "claude").split("\n", 1)[1])[
        "mcpServers"].values()
    assert credentials.admit(server["env"]["SCS_AGENT_KEY"]).agent_id == "desk"


@pytest.mark.django_db
@pytest.mark.parametrize("args", [("--agent-id", "x"), ("--agent-id", "bad id", "--agent-type", "claude"),
                                  ("--agent-id", "x", "--agent-type", "claude", "--permissions", "root")])
def test_bad_agent_arguments_issue_nothing(args):
    from realtime.models import AgentCredential

    with pytest.raises(CommandError):
        run("claude", *args)
    assert not AgentCredential.objects.exists()
