"""``/ws/wake/``: Daphne relays every session's events to the sidecars that wake waiting agents.

Where the channel layer is in memory, a sidecar cannot join Daphne's groups; it opens this
WebSocket instead (``realtime.wake_stream``). The handshake must come as the broadcast door's
requests do: ``Authorization: Bearer <SCS_BROADCAST_SECRET>``, from an address in
``SCS_BROADCAST_ALLOWED_IPS``, not through a proxy; anything else is refused (HTTP 403).
The consumer joins the wake group and sends what delivery hands it (the messages of every session
in one broadcast request) as one compact frame, ``{"type": "events", "events": [...]}`` (the envelopes,
whole). The client sends nothing.

Every session's batch passes through here, so the layer's ``wake.events`` skip Channels'
hop to the database thread before each handler (``LayerEventsDirectly``): at 1,000 viewers
over 100 sessions that hop was 8 % of Daphne's CPU in the rounds.
"""

import logging

from channels.generic.websocket import AsyncWebsocketConsumer

from realtime.envelope import encode
from realtime.live.broadcast import check_client, check_secret, through_proxy
from realtime.live.dispatching import LayerEventsDirectly
from realtime.live.groups import WAKE_GROUP
from realtime.publisher import start_in_daphne

logger = logging.getLogger(__name__)


class WakeRelayConsumer(LayerEventsDirectly, AsyncWebsocketConsumer):
    joined = False

    async def connect(self):
        headers = dict(self.scope.get("headers", []))
        client = (self.scope.get("client") or ("",))[0]
        refusal = check_client(client, through_proxy(name.decode("latin-1").lower() for name in headers)) or \
            check_secret(headers.get(b"authorization", b"").decode("latin-1"), client)
        if refusal:
            await self.close()  # before accept: the handshake is refused with 403
            return
        start_in_daphne()  # this process's publisher and sweeper, as for any WebSocket (realtime.publisher)
        await self.channel_layer.group_add(WAKE_GROUP, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(WAKE_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Nothing is expected from the sidecar; whatever it sends is ignored."""

    async def wake_events(self, message):
        await self.send(text_data=encode({"type": "events", "events": message["events"]}))
