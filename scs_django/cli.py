"""``scs-django``: the Shared Context Server without a Django project (``pipx run``/``uvx`` style).

    scs-django serve [--host H --ws-port P --mcp-port Q ...]   migrate, then Daphne + the MCP sidecar
    scs-django migrate                                          create or upgrade the database
    scs-django mcp [--transport stdio|http]                     the MCP sidecar alone (stdio by default)
    scs-django mcp-config [CLIENT|all] [--agent-id ID ...]      client configurations
    scs-django import-scs PATH [--dry-run]                      import a shared-context-server 1.1 database
    scs-django agent-key create|list|revoke ...                 agents' own keys

Any other name runs that Django management command (e.g. ``createsuperuser``). Settings:
``scs_django.settings``, from the environment.
"""

import os
import sys

# Our commands whose Django names differ (hyphens for underscores).
ALIASES = {"mcp-config": "mcp_config", "import-scs": "import_scs", "agent-key": "agent_key"}


def run_mcp(argv):
    """The sidecar; over stdio unless --transport says otherwise. Pending migrations are applied first."""
    if not any(arg == "--transport" or arg.startswith("--transport=") for arg in argv):
        argv = ["--transport", "stdio", *argv]
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0, stdout=sys.stderr)  # stdout is the MCP stream
    from mcp_sidecar.__main__ import main

    main(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scs_django.settings")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return
    name, rest = argv[0], argv[1:]
    if name == "mcp":
        run_mcp(rest)
        return
    from django.core.management import execute_from_command_line

    execute_from_command_line(["scs-django", ALIASES.get(name, name), *rest])
