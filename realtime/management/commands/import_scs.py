"""``python manage.py import_scs PATH [--dry-run] [--keep-agent-only]``: bring in a shared-context-server 1.1 database.

See ``realtime.scs_import`` for what is imported and how visibility is mapped.
"""

from django.core.management.base import BaseCommand, CommandError

from realtime import scs_import


def describe(counts):
    text = (f"{counts.sessions} sessions, {counts.messages} messages, {counts.memory} memory entries, "
            f"{counts.audit} audit events")
    if counts.skipped:
        text += " (skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.skipped.items())) + ")"
    return text


class Command(BaseCommand):
    help = "Import a shared-context-server 1.1 SQLite database (sessions, messages, memory, audit log); idempotent."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the 1.1 database file (its DATABASE_PATH, e.g. chat_history.db)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be imported; change nothing")
        parser.add_argument("--keep-agent-only", action="store_true",
                            help="import agent_only messages as agent_only (every agent of the sender's type reads "
                                 "them) rather than private (the sender and admins, as 1.1 showed them)")

    def handle(self, *args, path, dry_run, keep_agent_only, **options):
        try:
            counts = scs_import.run(path, dry_run=dry_run, keep_agent_only=keep_agent_only)
        except scs_import.SourceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{'Would import' if dry_run else 'Imported'} from {path}: {describe(counts)}")
