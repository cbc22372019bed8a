"""An agent's inbox: the messages that mention it, across sessions, stored with each message.

``store`` runs inside ``operations.add_message``'s transaction: one ``Mention`` row per agent
the message names (``realtime.mentions.mentioned``; never its own sender), numbered in each
agent's inbox under that agent's ``Inbox`` row, so an agent's mentions commit in the order
of their numbers and a cursor (the number of the last one read) never skips one.

``read`` returns a page of the mentions an agent may see (``realtime.visibility``, the one
rule, joined through the message), oldest first; ``wait`` blocks until there is one, woken
by the ``realtime.wake`` hub and reading the database first and again on each wake.
"""

import asyncio
import collections
from dataclasses import dataclass

from channels.db import DatabaseSyncToAsync
from django.db import connection
from django.db.models import F, Subquery
from django.db.models.functions import Coalesce

from realtime import read_cursors, reads
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError
from realtime.mentions import mentioned
from realtime.models import Inbox, Mention
from realtime.visibility import Viewer, visible_q
from realtime.wake import hub

MESSAGE_SIZE = ("message__content", "message__metadata")

TAKE_SQL = (
    "INSERT INTO {table} (agent_id, last_seq) VALUES {rows} "
    "ON CONFLICT (agent_id) DO UPDATE SET last_seq = {table}.last_seq + excluded.last_seq "
    "RETURNING agent_id, last_seq"
)


def take_seqs(counts):
    """Take ``counts[agent_id]`` next inbox positions of each agent, in agent id order (one statement);
    the last position taken of each. Locks their Inbox rows until the commit: taken in one order by every
    writer, so two writers never wait on each other."""
    agent_ids = sorted(counts)
    if connection.vendor in ("sqlite", "postgresql") and connection.features.can_return_columns_from_insert:
        table = connection.ops.quote_name(Inbox._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(TAKE_SQL.format(table=table, rows=", ".join(["(%s, %s)"] * len(agent_ids))),
                           [value for agent_id in agent_ids for value in (agent_id, counts[agent_id])])
            return dict(cursor.fetchall())
    seqs = {}
    for agent_id in agent_ids:
        Inbox.objects.get_or_create(agent_id=agent_id)
        Inbox.objects.filter(pk=agent_id).update(last_seq=F("last_seq") + counts[agent_id])
        seqs[agent_id] = Inbox.objects.filter(pk=agent_id).values_list("last_seq", flat=True).get()
    return seqs


def store(message):
    """Inside the message's transaction: a Mention for each agent it names; the agent ids."""
    return store_many([message])[0]


def store_many(messages):
    """Inside the messages' one transaction: their Mentions, each agent's positions in the order of
    ``messages``, all taken in one statement; the agent ids each names."""
    named = [sorted(set(mentioned(message.content, message.metadata)) - {message.sender}) for message in messages]
    counts = collections.Counter(agent_id for agent_ids in named for agent_id in agent_ids)
    if counts:
        last = take_seqs(counts)
        position = {agent_id: last[agent_id] - count for agent_id, count in counts.items()}
        mentions = []
        for message, agent_ids in zip(messages, named, strict=True):
            for agent_id in agent_ids:
                position[agent_id] += 1
                mentions.append(Mention(agent_id=agent_id, seq=position[agent_id], session_id=message.session_id,
                                        message=message))
        Mention.objects.bulk_create(mentions)
    return named


@dataclass
class Page:
    records: list  # message records, each with its session_id, oldest mention first
    cursor: int  # pass as ``since`` next time
    has_more: bool
    timed_out: bool = False


def newest_seq(agent_id):
    """The position of the agent's newest committed mention (0: none yet)."""
    return Inbox.objects.filter(pk=agent_id).values_list("last_seq", flat=True).first() or 0


def mentions_of(viewer: Viewer):
    """The agent's mentions in messages it may see, oldest first."""
    return (Mention.objects.filter(agent_id=viewer.id).filter(visible_q(viewer, prefix="message__"))
            .select_related("message").order_by("seq"))


def unread(queryset, agent_id):
    """Only the mentions in messages past the agent's read cursor of their session."""
    return queryset.filter(message__seq__gt=Coalesce(Subquery(read_cursors.read_seq_of(agent_id, "session_id")), 0))


def read(viewer: Viewer, since, limit):
    """A ``Page`` of mentions after ``since`` (None: those in messages not marked read), within the read budget."""
    # The newest position is read first: every mention up to it was committed, so the page examined them all.
    newest = newest_seq(viewer.id)
    queryset = mentions_of(viewer)
    if since is None:
        queryset = unread(queryset, viewer.id)
    elif since > newest:
        raise OperationError(
            ErrorCode.INVALID_ARGUMENT, f"since {since} is past your newest mention ({newest})",
            f"Pass the cursor a previous get_inbox returned (at most {newest}), or leave since out.",
        )
    else:
        queryset = queryset.filter(seq__gt=since)
    rows, has_more = reads.page(queryset, limit, size_of=MESSAGE_SIZE)
    records = [{**message_record(row.message), "session_id": row.session_id} for row in rows]
    if has_more:
        return Page(records, rows[-1].seq, True)
    return Page(records, max(newest, since or 0, rows[-1].seq if rows else 0), False)


read_async = DatabaseSyncToAsync(read, thread_sensitive=False)


async def wait(viewer: Viewer, since, within, limit, claims=None):
    """``read``, and when it finds nothing, wait up to ``within`` seconds for a mention the agent may see.

    With ``claims``, the wait ends (the refusal raised) once that token stops being good (``realtime.wait_guard``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    # Registered before the first read: nothing committed after it is missed.
    with hub.inbox(viewer.id, claims) as waiter:
        while True:
            waiter.check()
            waiter.take()  # what was handed over so far is in the database
            page = await read_async(viewer, since, limit)
            if page.records:
                return page
            since = page.cursor
            remaining = deadline - loop.time()
            if remaining <= 0 or not await waiter.wait(remaining):
                return Page([], since, False, timed_out=True)
