"""How a publisher hands events over: the one choice ``SCS_PUBLISH_VIA`` makes.

- ``http``: POST to Daphne's broadcast door (``realtime.broadcast_client``); the
  only way a plain process reaches the viewers of a Daphne with an in-memory layer.
- ``channel_layer``: ``realtime.live.delivery.deliver_many`` on this process's layer.
- ``auto`` (default): ``channel_layer`` when the layer is shared between
  processes (Redis), else ``http``.

Each strategy has ``send_many`` (async, one attempt for several targets' batches, a
``broadcast_client.Result`` each), ``send`` (the same for one batch) and ``send_sync``
(for a process with no publisher loop).
"""

from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured

from realtime import conf
from realtime.broadcast_client import REJECTED, RETRY, SENT, BroadcastClient, Result

WAYS = ("auto", "channel_layer", "http")


def publish_via():
    """``"channel_layer"`` or ``"http"``: how this process publishes (``SCS_PUBLISH_VIA``)."""
    from realtime.live.layers import default_is_process_local

    via = conf.get("SCS_PUBLISH_VIA")
    if via not in WAYS:
        raise ImproperlyConfigured(f"SCS_PUBLISH_VIA must be one of {', '.join(WAYS)}, not {via!r}")
    if via != "auto":
        return via
    return "http" if default_is_process_local() else "channel_layer"


class Strategy:
    """A subclass implements ``send`` or ``send_many`` (each is the other's default), and ``send_sync``."""

    via = target = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.send is Strategy.send and cls.send_many is Strategy.send_many:
            raise TypeError(f"{cls.__name__} must implement send or send_many")

    async def send(self, target, events):
        """One attempt to hand over one target's ``events``: a Result."""
        (result,) = await self.send_many([(target, events)])
        return result

    async def send_many(self, batches):
        """One attempt to hand over ``[(target, events), ...]``: a Result per batch, in order.

        By default one ``send`` per batch in turn; after a failure to retry, the rest fail with it untried.
        """
        results = []
        for target, events in batches:
            if results and results[-1].outcome == RETRY:
                results.append(results[-1])
            else:
                results.append(await self.send(target, events))
        return results

    async def close(self):
        pass


class HttpStrategy(Strategy):
    """Several targets' batches in one request (``POST /broadcast/``); ``send_sync`` one target's."""

    via = "http"

    def __init__(self, client=None):
        self.client = client or BroadcastClient(conf.get("SCS_BROADCAST_URL"), conf.get("SCS_BROADCAST_SECRET"))

    @property
    def target(self):
        return self.client.target

    async def send_many(self, batches):
        return await self.client.send_many(batches)

    def send_sync(self, session_id, events):
        return self.client.send_sync(session_id, events)

    async def close(self):
        await self.client.aclose()


class ChannelLayerStrategy(Strategy):
    via = "channel_layer"
    target = "channel_layer"

    async def send_many(self, batches):
        from realtime.live import delivery  # what runs in Daphne: loaded only by a process publishing this way

        try:
            missing = await delivery.deliver_many(batches)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis unreachable: back off and retry
            failure = Result(RETRY, f"{type(exc).__name__}: {exc}",
                             "Is the channel layer (CHANNEL_LAYER_URL) reachable?")
            return [failure] * len(batches)
        return [Result(REJECTED, f"no session {target}", "it was deleted") if target in missing else Result(SENT)
                for target, _ in batches]

    def send_sync(self, session_id, events):
        return async_to_sync(self.send)(session_id, events)


def strategy_for(via):
    return ChannelLayerStrategy() if via == "channel_layer" else HttpStrategy()
