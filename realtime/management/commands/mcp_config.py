from django.core.management.base import BaseCommand

from realtime.client_config import CLIENTS, config_for

TITLES = {
    "claude": "Claude Code (run in a shell)",
    "cursor": "Cursor (~/.cursor/mcp.json)",
    "vscode": "VS Code (.vscode/mcp.json)",
}


class Command(BaseCommand):
    help = "Print a ready-to-paste MCP client configuration for the sidecar."

    def add_arguments(self, parser):
        parser.add_argument("client", nargs="?", default="all", choices=[*CLIENTS, "all"])

    def handle(self, *args, client, **options):
        chosen = CLIENTS if client == "all" else (client,)
        for name in chosen:
            if len(chosen) > 1:
                self.stdout.write(f"# {TITLES[name]}")
            self.stdout.write(config_for(name))
            if len(chosen) > 1:
                self.stdout.write("")
