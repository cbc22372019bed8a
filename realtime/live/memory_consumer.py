"""``/ws/memory/``: the memory page's live rows, for staff (see ``realtime.live.memory``)."""

from urllib.parse import parse_qs

from realtime.live import access
from realtime.live.closecodes import CLOSE_UNAUTHORIZED
from realtime.live.consumers import LiveConsumer
from realtime.live.memory import MEMORY_GROUP, joins_memory
from realtime.memory_filter import MemoryFilter


class MemoryConsumer(LiveConsumer):
    """``/ws/memory/?agent=…&scope=…&q=…&expired=1``: the memory page's live rows, filtered as the page is."""

    viewer = None
    joined = False

    async def connect(self):
        self.viewer = await self.user_viewer()
        if not joins_memory(self.viewer):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.filter = MemoryFilter.from_params(parse_qs(self.scope.get("query_string", b"").decode("latin-1")))
        await self.channel_layer.group_add(MEMORY_GROUP, self.channel_name)
        self.joined = True
        await self.follow_user()
        await self.accept()

    async def disconnect(self, code):
        access.forget(self)
        if self.joined:
            await self.channel_layer.group_discard(MEMORY_GROUP, self.channel_name)
            await self.unfollow_user()

    async def receive_json(self, frame, **kwargs):
        """The only client frame is ``ping``; anything else is ignored."""
        if isinstance(frame, dict) and frame.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def memory_events(self, message):
        for record, action, text in zip(message["records"], message["actions"], message["texts"], strict=True):
            if action == "delete" or self.filter.matches(record):
                await self.send_text(text)
