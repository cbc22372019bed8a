"""``realtime.live.daphne_limits``: the unsent-bytes limit on WebSockets and the request body limit, unit by unit.

``install()`` swaps Daphne's protocol classes; each test installs onto attributes
``monkeypatch`` restores, and records what the bounded classes hand on to Daphne's
own methods instead of running them. ``test_limits_e2e.py`` checks both limits
against a real Daphne.
"""

import asyncio
import gc
import io
import sys
from types import SimpleNamespace

import pytest
from autobahn.websocket.compress import PerMessageDeflateOffer
from daphne import http_protocol, server, ws_protocol
from twisted.web.test.requesthelper import DummyChannel

from realtime import collector
from realtime.live import daphne_limits

MAX_UNSENT = 1000
MAX_BODY = 100


class Transport:
    """What Twisted's TCP transport holds of data the kernel has not taken yet."""

    def __init__(self, buffered=0, offset=0, temp=0):
        self.dataBuffer, self.offset, self._tempDataLen = b"x" * buffered, offset, temp


def daphne_class(cls):
    """The first class in ``cls``'s MRO defined by Daphne itself."""
    return next(base for base in cls.__mro__ if base.__module__.startswith("daphne."))


@pytest.fixture
def installed(monkeypatch):
    """The limits installed (MAX_UNSENT, MAX_BODY); ``calls`` lists what reached Daphne's own methods."""
    calls = []
    # Daphne's own classes, even where project.asgi already installed the limits in this process.
    web_request = daphne_class(http_protocol.WebRequest)
    monkeypatch.setitem(sys.modules, "daphne.server", server)
    monkeypatch.setattr(ws_protocol.WebSocketProtocol, "serverSend",
                        lambda self, content, binary=False: calls.append(("sent", content)))
    monkeypatch.setattr(web_request, "handleContentChunk", lambda self, data: calls.append(("chunk", data)))
    monkeypatch.setattr(web_request, "gotLength", lambda self, length: None)
    monkeypatch.setattr(web_request, "process", lambda self: calls.append(("process",)))
    monkeypatch.setattr(web_request, "basic_error", lambda self, status, text, body: calls.append(("error", status)))
    monkeypatch.setattr(server.Server, "create_application", server.Server.create_application)  # restored after
    monkeypatch.setattr(ws_protocol.WebSocketFactory, "protocol", ws_protocol.WebSocketProtocol)
    monkeypatch.setattr(server, "WebSocketFactory", ws_protocol.WebSocketFactory)
    monkeypatch.setattr(http_protocol, "WebRequest", web_request)
    thresholds = gc.get_threshold()
    assert daphne_limits.install(max_unsent=MAX_UNSENT, max_body=MAX_BODY) is True
    yield SimpleNamespace(calls=calls, websocket=ws_protocol.WebSocketFactory.protocol,
                          request=http_protocol.WebRequest)
    gc.set_threshold(*thresholds)


def test_outside_daphne_install_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "daphne.server", raising=False)
    thresholds = gc.get_threshold()
    before = (ws_protocol.WebSocketFactory.protocol, http_protocol.WebRequest, server.Server.create_application)
    assert daphne_limits.install() is False
    assert (ws_protocol.WebSocketFactory.protocol, http_protocol.WebRequest,
            server.Server.create_application) == before
    assert gc.get_threshold() == thresholds


def test_under_daphne_the_collector_waits_for_more_allocations(installed, settings):
    assert gc.get_threshold() == (50_000, collector.GC_YOUNGER_COLLECTIONS, collector.GC_OLDER_COLLECTIONS)
    settings.SCS_GC_THRESHOLD = 2_000
    daphne_limits.install(max_unsent=MAX_UNSENT, max_body=MAX_BODY)
    assert gc.get_threshold()[0] == 2_000
    settings.SCS_GC_THRESHOLD = 0  # a host project's setting, not checked as ours are: never turns collection off
    daphne_limits.install(max_unsent=MAX_UNSENT, max_body=MAX_BODY)
    assert gc.get_threshold()[0] == collector.GC_MIN_THRESHOLD


def test_the_sidecar_freezes_what_start_up_built_and_collects_as_daphne_does():
    thresholds = gc.get_threshold()
    try:
        collector.tune(freeze=True)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (50_000, collector.GC_YOUNGER_COLLECTIONS, collector.GC_OLDER_COLLECTIONS)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_daphne_still_creates_applications_as_our_copy_does():
    """``daphne_limits.create_application`` repeats Daphne's own with a Mailbox: a Daphne that changed it needs
    the copy looked at again."""
    import inspect

    original = inspect.getsource(server)  # the module's text: the method as Daphne wrote it, even once replaced
    for step in ('assert "application_instance" not in self.connections[protocol]', "input_queue = asyncio.Queue()",
                 'scope.setdefault("asgi", {"version": "3.0"})', "receive=input_queue.get",
                 "send=partial(self.handle_reply, protocol)", "if protocol not in self.connections:",
                 'self.connections[protocol]["application_instance"] = asyncio.ensure_future(',
                 "return input_queue"):
        assert step in original, step


def test_unsent_bytes_counts_the_buffer_past_its_offset_and_the_pending_writes():
    assert daphne_limits.unsent_bytes(Transport(buffered=500, offset=200, temp=50)) == 350
    assert daphne_limits.unsent_bytes(object()) == 0


def websocket(protocol_class, state, unsent):
    protocol = protocol_class.__new__(protocol_class)  # no connection: only what serverSend looks at
    protocol.state, protocol.transport = state, Transport(buffered=unsent)
    # permessage-deflate: frames take Daphne's own way (test_wsframes.py), each with a fresh compressor
    protocol._perMessageCompress = SimpleNamespace(server_no_context_takeover=True, _compressor="after a frame")
    protocol.request = SimpleNamespace(path=b"/ws/session_0123456789abcdef/")
    protocol.dropped = []
    protocol.dropConnection = lambda abort=False: protocol.dropped.append(abort)
    return protocol


def test_a_websocket_within_the_limit_sends(installed):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_OPEN, MAX_UNSENT)
    protocol.serverSend("frame")
    assert installed.calls == [("sent", "frame")] and protocol.dropped == []
    assert protocol._perMessageCompress._compressor is None  # not kept while the connection idles


def test_a_websocket_whose_client_left_too_much_unread_is_aborted(installed, caplog):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_OPEN, MAX_UNSENT + 1)
    protocol.serverSend("frame")
    assert installed.calls == [] and protocol.dropped == [True]
    assert "left 1001 bytes unread" in caplog.text


@pytest.mark.parametrize("state", ["STATE_CLOSING", "STATE_CLOSED"])
def test_a_closing_websocket_gets_no_more_frames(installed, state):
    protocol = websocket(installed.websocket, getattr(ws_protocol.WebSocketProtocol, state), 0)
    protocol.serverSend("frame")
    assert installed.calls == [] and protocol.dropped == []


class Server:
    """What ``create_application`` uses of Daphne's server; ``scopes`` and ``receives``: what the application got."""

    def __init__(self, *protocols):
        self.connections = {protocol: {} for protocol in protocols}
        self.scopes, self.receives = [], []

    async def handle_reply(self, protocol, message):
        pass

    def application(self, scope, receive, send):
        self.scopes.append(scope)
        self.receives.append(receive)
        return asyncio.sleep(0)


async def test_the_scope_of_a_websocket_can_measure_its_unsent_bytes(installed):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_OPEN, 123)
    daphne = Server(protocol, "an http request")
    server.Server.create_application(daphne, protocol, {"type": "websocket"})
    measure = daphne.scopes[0][daphne_limits.UNSENT_BYTES]
    assert measure() == 123
    protocol.state = ws_protocol.WebSocketProtocol.STATE_CLOSING
    assert measure() is None
    server.Server.create_application(daphne, "an http request", {"type": "http"})
    assert daphne_limits.UNSENT_BYTES not in daphne.scopes[1]
    assert all("application_instance" in connection for connection in daphne.connections.values())


async def test_the_scope_of_a_websocket_sends_text_frames_once_it_is_accepted(installed):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_CONNECTING, 0)
    daphne = Server(protocol)
    server.Server.create_application(daphne, protocol, {"type": "websocket"})
    send_text = daphne.scopes[0][daphne_limits.SEND_TEXT]
    assert send_text("early") is False and installed.calls == []  # the consumer sends it through ASGI instead
    protocol.state = ws_protocol.WebSocketProtocol.STATE_OPEN
    assert send_text("frame") is True and installed.calls == [("sent", "frame")]
    protocol.state = ws_protocol.WebSocketProtocol.STATE_CLOSED
    assert send_text("late") is True and installed.calls == [("sent", "frame")]  # dropped as the limit drops it


async def test_the_application_reads_what_the_protocol_puts_in_order(installed):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_CONNECTING, 0)
    daphne = Server(protocol)
    queue = server.Server.create_application(daphne, protocol, {"type": "websocket"})
    queue.put_nowait({"type": "websocket.connect"})
    queue.put_nowait({"type": "websocket.receive", "text": "x"})
    receive = daphne.receives[0]
    assert [await receive(), await receive()] == [{"type": "websocket.connect"},
                                                 {"type": "websocket.receive", "text": "x"}]


async def test_no_application_is_made_for_a_connection_already_gone(installed):
    protocol = websocket(installed.websocket, ws_protocol.WebSocketProtocol.STATE_CONNECTING, 0)
    daphne = Server(protocol)

    def application(scope, receive, send):
        daphne.connections.clear()  # Daphne forgets a connection that closes while the application is made
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    daphne.application = application
    assert server.Server.create_application(daphne, protocol, {"type": "websocket"}) is None


def test_installing_twice_measures_once(installed):
    wrapped = server.Server.create_application
    daphne_limits.install(max_unsent=MAX_UNSENT, max_body=MAX_BODY)
    assert server.Server.create_application is wrapped


@pytest.mark.parametrize("deflate", [False, True])
def test_deflate_is_accepted_by_the_factory_daphne_builds_only_when_on(monkeypatch, installed, deflate):
    daphne_limits.install(max_unsent=MAX_UNSENT, max_body=MAX_BODY, deflate=deflate)
    factory = server.WebSocketFactory(None, server="daphne")
    factory.setProtocolOptions(allowNullOrigin=True)  # as Server.run() does after building it
    offers = [PerMessageDeflateOffer()]
    assert (factory.perMessageCompressionAccept(offers) is not None) is deflate
    assert isinstance(factory, ws_protocol.WebSocketFactory)


def request(request_class):
    made = request_class.__new__(request_class)  # no channel: only what the body limit looks at
    made.method, made.uri = b"POST", b"/broadcast/session_0123456789abcdef"
    return made


def test_a_body_within_the_limit_is_passed_on_and_processed(installed):
    made = request(installed.request)
    made.gotLength(MAX_BODY)
    made.handleContentChunk(b"x" * 60)
    made.handleContentChunk(b"x" * 40)
    made.process()
    assert installed.calls == [("chunk", b"x" * 60), ("chunk", b"x" * 40), ("process",)]


def test_a_declared_length_over_the_limit_is_refused_unread(installed):
    made = request(installed.request)
    made.gotLength(MAX_BODY + 1)
    made.handleContentChunk(b"x" * 10)
    made.process()
    assert installed.calls == [("error", 413)]


def test_a_chunked_body_growing_past_the_limit_is_dropped_from_there_and_refused(installed):
    made = request(installed.request)
    made.gotLength(None)  # chunked: no length declared
    made.handleContentChunk(b"x" * 60)
    made.handleContentChunk(b"x" * 60)
    made.handleContentChunk(b"x")
    made.process()
    assert installed.calls == [("chunk", b"x" * 60), ("error", 413)]


@pytest.mark.parametrize("parsed", [False, True])
def test_twisted_leaves_a_form_body_to_the_application(installed, parsed):
    """Daphne hands the raw body to the application; Twisted does not also parse it into ``request.args``."""
    channel = DummyChannel()
    channel.factory = SimpleNamespace(server=SimpleNamespace(protocol_connected=lambda made: None))
    made = installed.request(channel) if not parsed else daphne_class(installed.request)(channel)
    made.requestHeaders.setRawHeaders(b"content-type", [b"application/x-www-form-urlencoded"])
    made.content = io.BytesIO()
    made.content.write(b"username=a&password=b")  # as Twisted leaves it: at the end of what it received
    made.requestReceived(b"POST", b"/login/?next=/", b"HTTP/1.1")
    expected = {b"next": [b"/"]} | ({b"username": [b"a"], b"password": [b"b"]} if parsed else {})
    assert made.args == expected  # parsed: Daphne's own class, as a check that the body would be parsed
    assert installed.calls == [("process",)]
