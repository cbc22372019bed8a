"""Replay: the messages a viewer missed, read from the database a chunk at a time, as fast as the socket drains."""

import asyncio

from channels.db import DatabaseSyncToAsync
from django.db.models import TextField
from django.db.models.functions import Cast, Length

from realtime.envelope import encode, message_event
from realtime.fragments import page_event
from realtime.live.closecodes import CLOSE_STALLED
from realtime.live.daphne_limits import UNSENT_BYTES
from realtime.operations import visible_messages

# Replay reads the database a chunk at a time: at most REPLAY_CHUNK messages and about REPLAY_CHUNK_BYTES
# of content and metadata (characters; at least one message), and under Daphne reads the next chunk only once
# the client has taken all but REPLAY_LOW_WATER bytes. 100 sockets replaying 100 MB each without reading then
# hold ~100 x 300 KB in Daphne rather than all of it: RSS +44 MiB where it was +1.5 GiB (tests/test_replay_memory.py).
REPLAY_CHUNK = 500
REPLAY_CHUNK_BYTES = 256 * 1024
REPLAY_LOW_WATER = 64 * 1024
DRAIN_TIMEOUT = 30  # seconds a replay waits for a client that reads nothing before closing it (CLOSE_STALLED)
ENVELOPE_BYTES = 300  # a frame's JSON around its content and metadata, roughly


def _read_chunk(viewer, session_id, after, upto):
    """The next replay chunk after ``after``: its frames, encoded, and the seq it ends at."""
    pending = visible_messages(viewer, session_id).filter(seq__gt=after, seq__lte=upto)
    sizes = pending.annotate(
        size=Length("content") + Length(Cast("metadata", output_field=TextField()))
    ).values_list("seq", "size")[:REPLAY_CHUNK]
    total, last = 0, None
    # Streamed: measuring a row reads all of its text, so stop at the first row past the chunk.
    for seq, size in sizes.iterator(chunk_size=16):
        total += (size or 0) + ENVELOPE_BYTES
        if last is not None and total > REPLAY_CHUNK_BYTES:
            break
        last = seq
    if last is None:
        return [], after
    frame = page_event if viewer.kind == "user" else (lambda event: event)  # pages also get each message's html
    return [encode(frame(message_event(message))) for message in pending.filter(seq__lte=last)], last


# Off the thread the async ORM shares: many replays would otherwise queue every other query (a new
# connection's sign-in) behind theirs, past Daphne's 5 s handshake timeout.
read_chunk = DatabaseSyncToAsync(_read_chunk, thread_sensitive=False)


class ReplayMixin:
    """Replay for a consumer with ``viewer``, ``session_id``, ``revoked``, ``send_text`` and ``send_json``."""

    async def replay(self, after, upto, announce=True):
        """Send every visible message with ``after < seq <= upto`` (then ``caught_up``), a chunk per drain."""
        cursor = after
        while cursor < upto and not self.revoked:
            texts, cursor = await read_chunk(self.viewer, self.session_id, cursor, upto)
            if not texts:
                break
            for text in texts:
                await self.send_text(text)
            if not await self.drained():
                return
        if announce:
            await self.send_json({"type": "caught_up", "last_seq": upto})

    async def drained(self):
        """Under Daphne, wait until the client has read all but REPLAY_LOW_WATER bytes; False if it is gone."""
        unsent = self.scope.get(UNSENT_BYTES)
        if unsent is None:
            return not self.revoked  # another server: nothing to measure
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + DRAIN_TIMEOUT, 0.005
        while not self.revoked and (waiting := unsent()) is not None and waiting > REPLAY_LOW_WATER:
            if loop.time() > deadline:
                await self.send_error("STALLED", f"nothing was read for {DRAIN_TIMEOUT} s; reconnect with ?since")
                await self.close(code=CLOSE_STALLED)
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
        return not self.revoked and unsent() is not None
