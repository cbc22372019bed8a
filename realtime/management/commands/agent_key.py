"""``python manage.py agent_key create|list|revoke``: each agent's own key for the MCP sidecar.

``create`` prints the key once (it is stored hashed) with a ready ``claude mcp add`` line;
``list`` shows every key but never the key itself; ``revoke`` ends a key and, at their
next call, every token issued under it.
"""

import re
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime import credentials
from realtime.client_config import config_for
from realtime.models import AgentCredential

MAX_EXPIRES_DAYS = 3650


class OneLineParser(CommandParser):
    """Bad arguments on the command line are one line on stderr, not a usage block."""

    def error(self, message):
        if self.called_from_command_line:
            sys.stderr.write(f"agent_key: {message}\n")
            sys.exit(2)
        raise CommandError(message)


def permission_list(text):
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in credentials.PERMISSIONS]
    if not chosen or unknown:
        raise CommandError(f"--permissions must list some of {', '.join(credentials.PERMISSIONS)}, got {text!r}")
    return chosen


def check_new_key(agent_id, agent_type, expires_days, description):
    """Refuse bad arguments before anything is stored."""
    if not re.match(credentials.AGENT_ID_PATTERN, agent_id):
        raise CommandError("--agent-id must be 1-100 characters of letters, digits and _ . : @ -")
    if not re.match(credentials.AGENT_TYPE_PATTERN, agent_type):
        raise CommandError("--agent-type must be 1-50 characters of letters, digits and _ . -")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise CommandError(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}")
    if len(description) > 200:
        raise CommandError("--description must be at most 200 characters")


def issue_key(agent_id, agent_type, permissions="read,write", expires_days=None, description="", created_by=""):
    """Validate, then issue; returns ``(credential, key)``. Shared with ``mcp_config --agent-id``."""
    chosen = permission_list(permissions)
    check_new_key(agent_id, agent_type, expires_days, description)
    expires_in = timedelta(days=expires_days) if expires_days is not None else None
    return credentials.issue(agent_id, agent_type, chosen, expires_in=expires_in, description=description,
                             created_by=created_by)


def when(moment):
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


class Command(BaseCommand):
    help = "Issue, list and revoke agent keys (X-API-Key for one agent id and agent type)."

    def add_arguments(self, parser):
        parser.error = OneLineParser.error.__get__(parser)
        actions = parser.add_subparsers(dest="action", required=True, parser_class=OneLineParser,
                                        metavar="create|list|revoke")
        create = actions.add_parser("create", help="issue a key; it is printed once")
        create.add_argument("--agent-id", required=True)
        create.add_argument("--agent-type", required=True)
        create.add_argument("--permissions", default="read,write", help="comma list of read, write, admin")
        create.add_argument("--expires-days", type=int, default=None, help="days until the key expires")
        create.add_argument("--description", default="")
        actions.add_parser("list", help="every key: id, agent, type, permissions, dates (never the key)")
        revoke = actions.add_parser("revoke", help="revoke one key (by key id) or every key of an agent id")
        revoke.add_argument("identifier", metavar="AGENT_ID_OR_KEY_ID")

    def handle(self, *args, action, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_create(self, agent_id, agent_type, permissions, expires_days, description, **options):
        credential, key = issue_key(agent_id, agent_type, permissions, expires_days, description,
                                    created_by="manage.py agent_key")
        expires = when(credential.expires_at) if credential.expires_at else "never"
        self.stdout.write(f"Agent key for {credential.agent_id} (type {credential.agent_type}; "
                          f"{', '.join(credential.permissions)}), key id {credential.key_id}, expires {expires}:")
        self.stdout.write(key)
        self.stdout.write("Shown once: only its hash is stored. Give it to that agent's MCP client as X-API-Key.")
        self.stdout.write("Add it to Claude Code:")
        self.stdout.write(f"  {config_for('claude', key=key)}")

    def handle_list(self, **options):
        rows = [("key id", "agent id", "type", "permissions", "created", "expires", "revoked", "last used")]
        for c in AgentCredential.objects.order_by("agent_id", "-created_at"):
            rows.append((c.key_id, c.agent_id, c.agent_type, ",".join(c.permissions), when(c.created_at),
                         when(c.expires_at), when(c.revoked_at), when(c.last_used_at)))
        if len(rows) == 1:
            self.stdout.write("No agent keys. Issue one with: python manage.py agent_key create "
                              "--agent-id ID --agent-type TYPE")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def handle_revoke(self, identifier, **options):
        count = credentials.revoke(identifier)
        if not count:
            raise CommandError(f"no active agent key has key id or agent id {identifier!r}")
        self.stdout.write(f"Revoked {count} key(s) for {identifier}; their tokens are refused from their next call.")
