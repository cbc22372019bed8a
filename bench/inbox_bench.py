"""Mentions, the inbox, read cursors and list_sessions: what they cost, in this process.

``python -m bench inbox [--sessions 1000] [--rounds 200] [--json]``

Seeds a throw-away database (SQLite in a temporary folder; ``DATABASE_URL`` to use
another, whose seeded sessions are deleted afterwards): ``--sessions`` sessions of 20
messages (mixed visibilities, one in five mentioning bob), bob's read cursor in half
of them. Then measures the domain calls: ``add_message`` mentioning no one, one agent
and 20 agents (what storing mentions adds to a write), ``mark_read``, ``list_sessions``
(a page of 50 with unread counts) and a ``get_inbox`` read of 50 mentions.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

from bench import summary_ms, table
from bench.search_bench import VISIBILITIES, WORDS, setup_django


def seed(count, rng):
    """``count`` sessions of 20 messages stored through add_message (so mentions are stored as in use)."""
    from realtime import operations, read_cursors

    senders = [("alice", "claude"), ("bob", "claude"), ("gina", "gemini"), ("root", "admin")]
    ids = []
    for n in range(count):
        session_id = operations.create_session(f"bench {n}", "bench").id
        for seq in range(1, 21):
            sender, sender_type = senders[seq % len(senders)]
            words = " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))
            content = f"@bob {words}" if seq % 5 == 0 else words
            operations.add_message(session_id, sender=sender, sender_type=sender_type, content=content,
                                   visibility=rng.choice(VISIBILITIES), may_write_admin_only=True)
        if n % 2:
            read_cursors.mark("bob", session_id, 10)
        ids.append(session_id)
    return ids


def timed(call, rounds):
    samples = []
    for n in range(rounds):
        started = time.perf_counter()
        call(n)
        samples.append(time.perf_counter() - started)
    return samples


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench inbox", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="sessions of 20 messages to seed")
    parser.add_argument("--rounds", type=int, default=200, help="calls per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="scs-bench-inbox-") as data_dir:
        setup_django(data_dir)
        from django.db import connection
        from django.test.utils import override_settings

        from realtime import inbox, operations, publisher, read_cursors
        from realtime.models import Session
        from realtime.visibility import Viewer

        publisher.get_publisher().publish = lambda event: None  # no Daphne: measure the store alone
        rng = random.Random(7)
        started = time.perf_counter()
        with override_settings(SCS_MAX_SESSIONS_PER_HOUR=10**9):
            sessions = seed(args.sessions, rng)
            target = operations.create_session("bench writes", "bench").id
        seeded_in = time.perf_counter() - started
        bob = Viewer.for_agent("bob", "claude", ["read", "write"])
        crowd = " ".join(f"@agent-{n}" for n in range(20))
        try:
            figures = {}
            for label, content in (("no mention", "plain words"), ("1 mention", "@carol look"),
                                   ("20 mentions", crowd)):
                def write(n, content=content):
                    operations.add_message(target, sender="alice", sender_type="claude", content=content)

                figures[f"add_message, {label}"] = summary_ms(timed(write, args.rounds))
            figures["mark_read"] = summary_ms(timed(
                lambda n: read_cursors.mark("bob", sessions[n % len(sessions)], 20), args.rounds))
            figures[f"list_sessions 50 of {len(sessions) + 1:,}"] = summary_ms(timed(
                lambda n: operations.list_sessions(bob, limit=50), args.rounds))
            figures["get_inbox read 50 (since=None)"] = summary_ms(timed(
                lambda n: inbox.read(bob, None, 50), args.rounds))
            figures["get_inbox read 50 (since=cursor)"] = summary_ms(timed(
                lambda n: inbox.read(bob, n % 100, 50), args.rounds))
        finally:
            if os.environ.get("DATABASE_URL"):
                Session.objects.filter(pk__in=[*sessions, target]).delete()
        vendor = connection.vendor

    if args.json:
        print(json.dumps({"vendor": vendor, "seeded_s": round(seeded_in, 1), "figures": figures}, indent=2))
        return 0
    print(f"{vendor}: {args.sessions:,} sessions of 20 messages seeded in {seeded_in:.1f} s")
    print(table(["call", "n", "p50 ms", "p95 ms", "max ms"],
                [(name, f["n"], f["p50"], f["p95"], f["max"]) for name, f in figures.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
