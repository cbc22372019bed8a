"""``python manage.py export_session SESSION_ID [--format md|json] [--output FILE]``: every message of a session."""

from django.core.management.base import BaseCommand, CommandError

from realtime.errors import OperationError
from realtime.export import FORMATS, export
from realtime.operations import get_session


class Command(BaseCommand):
    help = "Write a session and every one of its messages as Markdown or JSON (to stdout, or --output FILE)."

    def add_arguments(self, parser):
        parser.add_argument("session_id")
        parser.add_argument("--format", choices=list(FORMATS), default="md", help="md (default) or json")
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args, session_id, format, output, **options):  # noqa: A002 - the option's name
        try:
            session = get_session(session_id)
        except OperationError as exc:
            raise CommandError(f"{exc.message}. {exc.hint}") from None
        pieces = export(session, format)
        if output:
            with open(output, "w", encoding="utf-8") as file:
                file.writelines(pieces)
            self.stderr.write(f"Wrote {session.id} to {output}")
        else:
            for piece in pieces:
                self.stdout.write(piece, ending="")
