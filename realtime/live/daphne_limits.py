"""Under Daphne: limits and costs per connection that Daphne itself leaves open.

- A WebSocket client that stops reading: Daphne writes every frame a consumer
  sends straight into the connection's Twisted transport, which keeps whatever
  the client has not read, without limit. Before each frame we look at how many
  bytes are still waiting; past ``max_unsent`` the connection is aborted. The
  client reconnects and resumes by seq, so nothing is lost.
- A replay that must not read ahead of its client: each WebSocket's scope gets
  ``scope[UNSENT_BYTES]``, a function returning the connection's unsent bytes
  now (None once it is closing or closed). Other servers leave it out.
- Text frames go out through ``realtime.live.wsframes`` (built once per text for
  every viewer, written at once) where the connection allows it. The scope also
  gets ``scope[SEND_TEXT]``, a function sending one text frame on this WebSocket
  at once: a consumer's frames then skip the ASGI ``send`` chain (Channels'
  session middleware looks at the session on every frame, though it only acts on
  the handshake). Accepting and closing still go through ``send``.
- A large request body: Daphne hands the whole body to the application at once,
  in memory, before any view can refuse it. Bodies past ``max_body`` are read
  and thrown away, and answered 413. Twisted does not also parse a form body into
  ``request.args``, which Daphne never reads (where Twisted lets it be turned off).
- permessage-deflate, which Daphne never accepts: with ``deflate`` the WebSocket
  factory Daphne builds accepts a client's offer, bounded per connection as
  ``realtime.live.ws_deflate`` explains.

- The garbage collector, tuned for many long-lived connections: an idle WebSocket
  holds ~170 objects the collector tracks, so 10,000 connections make a full
  collection walk ~1.7 M objects, 1-2 s of stalled loop. With Python's thresholds
  (700, 10, 10) one ran every ~5 s while viewers joined and during fan-out rounds
  (38 s of collection in a ``bench fanout --viewers 10000 --sessions 100`` run).
  ``(SCS_GC_THRESHOLD, 20, 100)`` collects the young generation every 50,000
  allocations by default, the middle one every 20 of those, and considers a full
  collection every 100 of those, when long-lived objects also grew by a quarter
  (Python's own rule): 4 s of collection in the same run, connect 86 s -> 62 s,
  CPU per 1,000 frames 0.19 -> 0.13 s. Garbage waits longer: the soak's Daphne
  levels about 10 MiB higher.

``install()`` does nothing outside a Daphne process (tests, other ASGI servers);
call it from your ASGI module, which Daphne imports before it builds its factories.
The limits come from ``SCS_WS_MAX_BUFFER`` and ``SCS_HTTP_MAX_BODY``, deflate from
``SCS_WS_DEFLATE``, the collector's first threshold from ``SCS_GC_THRESHOLD``.
"""

import asyncio
import functools
import inspect
import logging
import sys

from realtime import collector, conf
from realtime.live import ws_deflate, wsframes
from realtime.live.mailbox import Mailbox

logger = logging.getLogger("realtime.limits")

UNSENT_BYTES = "scs.unsent_bytes"  # scope key: () -> unsent bytes of this WebSocket, or None once it is closing
SEND_TEXT = "scs.send_text"  # scope key: (text) -> one text frame on this WebSocket; False before it is accepted


def unsent_bytes(transport):
    """Bytes written to a Twisted TCP transport that the kernel has not taken yet."""
    waiting = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return waiting + getattr(transport, "_tempDataLen", 0)


def create_application(server, protocol, scope):
    """Daphne's ``Server.create_application`` (as of Daphne 4.1-4.2; ``tests/test_daphne_limits.py`` checks
    that Daphne's own still does what this repeats) with a ``Mailbox`` for the application's input (not an
    ``asyncio.Queue``: see ``realtime.live.mailbox``) and, for a WebSocket, ``UNSENT_BYTES`` and ``SEND_TEXT``
    in the scope (which Daphne builds afresh for each connection, so it is extended in place)."""
    assert "application_instance" not in server.connections[protocol]
    from daphne import ws_protocol

    if isinstance(protocol, ws_protocol.WebSocketProtocol):
        scope[UNSENT_BYTES] = functools.partial(unsent_bytes_of, protocol)
        scope[SEND_TEXT] = functools.partial(send_text_on, protocol)
    input_queue = Mailbox()
    scope.setdefault("asgi", {"version": "3.0"})
    instance = server.application(scope=scope, receive=input_queue.get,
                                  send=functools.partial(server.handle_reply, protocol))
    if protocol not in server.connections:
        return None
    server.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
    return input_queue


create_application.scs_limits = True


def unsent_bytes_of(protocol):
    """``scope[UNSENT_BYTES]``: the WebSocket's unsent bytes, None once it is closing or closed."""
    if protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED) or protocol.transport is None:
        return None
    return unsent_bytes(protocol.transport)


def send_text_on(protocol, text):
    """``scope[SEND_TEXT]``: one text frame at once; False before the WebSocket is accepted (that goes through
    the ASGI ``send``)."""
    if protocol.state == protocol.STATE_CONNECTING:
        return False
    protocol.serverSend(text)
    return True


def install(*, max_unsent=None, max_body=None, deflate=None):
    """Put both limits (and permessage-deflate, if on) in place if this process is Daphne; return whether it is."""
    if "daphne.server" not in sys.modules:
        return False
    max_unsent = conf.get("SCS_WS_MAX_BUFFER") if max_unsent is None else max_unsent
    max_body = conf.get("SCS_HTTP_MAX_BODY") if max_body is None else max_body
    deflate = bool(conf.get("SCS_WS_DEFLATE")) if deflate is None else deflate
    collector.tune()
    from daphne import http_protocol, server, ws_protocol
    from twisted.web import http as twisted_http

    form_parsing_optional = "parsePOSTFormSubmission" in inspect.signature(twisted_http.Request).parameters

    class BoundedWebSocketProtocol(ws_protocol.WebSocketProtocol):
        options_from = None  # the factory whose options the class holds

        def _connectionMade(self):
            # Autobahn copies its ~30 options from the factory onto every connection it makes, unless the
            # protocol has them already. Every WebSocket of a Daphne process comes from its one factory,
            # so the class holds them once: about 1.5 KiB less per connection. They are read at the first
            # connection: Daphne sets its factory's options before it listens and never after.
            cls = type(self)
            if cls.options_from is None:
                for name in self.CONFIG_ATTRS:
                    value = getattr(self.factory, name)  # a function (an accept hook) must stay unbound
                    setattr(cls, name, staticmethod(value) if callable(value) else value)
                cls.options_from = self.factory
            elif cls.options_from is not self.factory:
                for name in self.CONFIG_ATTRS:
                    setattr(self, name, getattr(self.factory, name))
            super()._connectionMade()

        def serverSend(self, content, binary=False):
            if self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
                return  # the client is gone or going: the frame cannot arrive (it resumes by seq)
            waiting = unsent_bytes(self.transport)
            if self.state == self.STATE_OPEN and waiting > max_unsent:
                path = getattr(self.request, "path", "?")
                logger.warning("dropping a WebSocket on %s: its client left %d bytes unread (SCS_WS_MAX_BUFFER=%d)",
                               path.decode("latin-1") if isinstance(path, bytes) else path, waiting, max_unsent)
                self.dropConnection(abort=True)
                return
            if binary or self.state != self.STATE_OPEN or not wsframes.send_text(self, content, waiting):
                super().serverSend(content, binary)
                ws_deflate.release_compressor(self)

    class DeflateWebSocketFactory(ws_protocol.WebSocketFactory):
        """Daphne's factory, accepting permessage-deflate offers. ``Server.run()`` sets its own options
        after building it; ``setProtocolOptions`` changes only the options it is given, so this one stays."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.setProtocolOptions(perMessageCompressionAccept=ws_deflate.accept)

    class BoundedWebRequest(http_protocol.WebRequest):
        body_bytes = 0
        body_too_large = False

        def __init__(self, *args, **kwargs):
            # Daphne hands the raw body to the application; Twisted's own parse of form bodies into
            # request.args (which nothing reads) cost 8 % of Daphne's CPU per broadcast request.
            if form_parsing_optional:
                kwargs.setdefault("parsePOSTFormSubmission", False)
            super().__init__(*args, **kwargs)

        def gotLength(self, length):
            super().gotLength(length)
            self.body_too_large = length is not None and length > max_body

        def handleContentChunk(self, data):
            self.body_bytes += len(data)
            if self.body_bytes > max_body:
                self.body_too_large = True
            if not self.body_too_large:
                super().handleContentChunk(data)

        def process(self):
            if self.body_too_large:
                logger.warning("refused a %s request body over %d bytes on %s", self.method.decode("latin-1"),
                               max_body, self.uri.decode("latin-1")[:200])
                self.basic_error(413, b"Payload Too Large", f"The request body is larger than {max_body} bytes.")
                return None
            return super().process()

    if not getattr(server.Server.create_application, "scs_limits", False):  # install() may be called twice
        server.Server.create_application = create_application
    ws_protocol.WebSocketFactory.protocol = BoundedWebSocketProtocol
    # Server.run() builds its factory from the name daphne.server imported.
    server.WebSocketFactory = DeflateWebSocketFactory if deflate else ws_protocol.WebSocketFactory
    http_protocol.WebRequest = BoundedWebRequest  # HTTPFactory.buildProtocol looks it up per connection
    return True
