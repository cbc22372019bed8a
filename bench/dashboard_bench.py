"""The dashboard: its first render over many sessions, and what one live batch costs.

``python -m bench dashboard [--sessions 1000] [--messages 20] [--rounds 30] [--json]``

Seeds a throw-away SQLite database (``DATABASE_URL`` to use another, whose seeded
sessions are deleted afterwards) with ``--sessions`` sessions of ``--messages``
messages (mixed visibilities; one session in ten holds only admin_only messages),
then measures in this process:

1. ``GET /`` (page 1 and the last page, 50 sessions each) for a non-staff user and
   for staff, through Django's test client, with the number of queries;
2. per live batch: the session's tally counted on from the last batch (the steady
   state), read from the database (after a gap), and one viewer's frame.
"""

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench import summary_ms, table
from bench.search_bench import setup_django, timed

VISIBILITIES = ["public"] * 6 + ["private", "agent_only", "admin_only"]
SENDERS = [("alice", "claude"), ("bob", "claude"), ("gina", "gemini"), ("root", "admin")]


def seed(sessions, messages, rng):
    from realtime.models import Message, Session

    start = datetime.now(UTC) - timedelta(days=1)
    ids, batch = [], []
    for number in range(sessions):
        session = Session.objects.create(purpose=f"bench dashboard {number}", created_by="bench", last_seq=messages)
        ids.append(session.id)
        hidden_only = number % 10 == 0
        for seq in range(1, messages + 1):
            sender, sender_type = rng.choice(SENDERS)
            batch.append(Message(
                session=session, seq=seq, sender=sender, sender_type=sender_type, content="x" * 80,
                visibility="admin_only" if hidden_only else rng.choice(VISIBILITIES),
                timestamp=start + timedelta(seconds=rng.randint(0, 86_000)),
            ))
        if len(batch) >= 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    return ids


def render_figures(rounds):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # responses keep their template context
    figures = {}
    for name, staff in (("member", False), ("staff", True)):
        user = get_user_model().objects.create_user(f"bench-{name}", password="x", is_staff=staff)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        last = client.get("/").context["page"].paginator.num_pages
        for label, url in (("page 1", "/"), (f"last page ({last})", f"/?page={last}")):
            queries = []

            def record(execute, sql, *rest, queries=queries):
                queries.append(sql)
                return execute(sql, *rest)

            with connection.execute_wrapper(record):
                assert client.get(url).status_code == 200
            samples = timed(lambda n, url=url, client=client: client.get(url), rounds)
            figures[f"GET / {name}, {label}"] = {**summary_ms(samples), "queries": len(queries)}
    return figures


def live_figures(session_id, rounds):
    from realtime.envelope import message_event
    from realtime.live import dashboard
    from realtime.models import Message
    from realtime.visibility import Viewer

    newest = Message.objects.filter(session_id=session_id).order_by("-seq").first()
    event = message_event(newest)
    member = Viewer("user", "bench-member")

    async def run():
        figures = {}
        dashboard._tallies.clear()

        async def read(n):
            dashboard._tallies.pop(session_id, None)
            await dashboard.tally(session_id, [event])

        async def counted_on(n):
            seq = event["seq"]
            known_seq, known = dashboard._tallies[session_id]
            dashboard._tallies[session_id] = (seq - 1, known)
            await dashboard.tally(session_id, [event])

        for label, fn in (("tally read from the database", read), ("tally counted on (steady state)", counted_on)):
            samples = []
            for n in range(rounds * 10):
                started = time.perf_counter()
                await fn(n)
                samples.append(time.perf_counter() - started)
            figures[f"live batch: {label}"] = summary_ms(samples)
        message = dashboard.summary({"id": session_id, "purpose": "p", "created_by": "c"}, [event],
                                    dashboard._tallies[session_id][1])
        figures["live batch: one viewer's frame"] = summary_ms(
            timed(lambda n: dashboard.summary_frame(member, message), rounds * 100))
        return figures

    return asyncio.run(run())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20, help="messages per session")
    parser.add_argument("--rounds", type=int, default=30, help="renders per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="scs-bench-dashboard-") as data_dir:
        setup_django(data_dir)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from realtime.models import Session

        started = time.perf_counter()
        ids = seed(args.sessions, args.messages, random.Random(11))
        seeded_in = time.perf_counter() - started
        try:
            figures = render_figures(args.rounds)
            figures.update(live_figures(ids[1], args.rounds))
        finally:
            if os.environ.get("DATABASE_URL"):
                Session.objects.filter(pk__in=ids).delete()
                get_user_model().objects.filter(username__startswith="bench-").delete()
        vendor = connection.vendor

    if args.json:
        print(json.dumps({"sessions": args.sessions, "messages": args.messages, "figures": figures}, indent=2))
        return 0
    print(f"{args.sessions:,} sessions x {args.messages} messages ({vendor}, seeded in {seeded_in:.1f} s)\n")
    rows = [[name, f["n"], f["p50"], f["p95"], f["max"], f.get("queries")] for name, f in figures.items()]
    print(table(["figure", "n", "p50 ms", "p95 ms", "max ms", "queries"], rows))
    return 0
