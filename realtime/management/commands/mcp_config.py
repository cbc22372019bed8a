"""``python manage.py mcp_config [CLIENT|all] [--agent-id ID --agent-type TYPE]`` (clients: realtime.client_config).

With ``--agent-id``, issues that agent its own key (``agent_key create``) and prints the
configuration with it; without, the configuration carries the shared ``SCS_API_KEY``.
"""

from django.core.management.base import BaseCommand, CommandError

from realtime.client_config import CLIENTS, TITLES, config_for
from realtime.management.commands.agent_key import issue_key


class Command(BaseCommand):
    help = "Print a ready-to-paste MCP client configuration for the sidecar (with --agent-id: a new agent key)."

    def add_arguments(self, parser):
        parser.add_argument("client", nargs="?", default="all", choices=[*CLIENTS, "all"])
        parser.add_argument("--agent-id", help="issue this agent its own key and configure the client with it")
        parser.add_argument("--agent-type", help="the agent type the key is bound to (with --agent-id)")
        parser.add_argument("--permissions", default="read,write", help="the key's ceiling (with --agent-id)")
        parser.add_argument("--expires-days", type=int, default=None, help="days until the key expires")

    def handle(self, *args, client, agent_id, agent_type, permissions, expires_days, **options):
        key = None
        if agent_id or agent_type:
            if not (agent_id and agent_type):
                raise CommandError("--agent-id and --agent-type go together")
            credential, key = issue_key(agent_id, agent_type, permissions, expires_days,
                                        created_by="manage.py mcp_config")
            self.stdout.write(f"# Issued key {credential.key_id} for agent {credential.agent_id} "
                              f"(type {credential.agent_type}; {', '.join(credential.permissions)}). "
                              "It is shown only here; revoke it with: python manage.py agent_key revoke "
                              f"{credential.key_id}")
        chosen = CLIENTS if client == "all" else (client,)
        for name in chosen:
            if len(chosen) > 1:
                self.stdout.write(f"# {TITLES[name]}")
            self.stdout.write(config_for(name, key=key))
            if len(chosen) > 1:
                self.stdout.write("")
