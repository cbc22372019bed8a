"""``realtime.live.wsframes``: a text frame built once per text, written at once or behind what waits."""

from types import SimpleNamespace

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from realtime.live import wsframes


def parsed(data):
    """The one frame in ``data``, read by the websockets client library (server side: unmasked)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    return done.value.value


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])  # each length encoding and its edges
def test_a_text_frame_is_what_a_client_reads_as_that_text(size):
    text = "é" * (size // 2) + "x" * (size % 2)
    frame = parsed(wsframes.text_frame(text))
    assert (frame.opcode, frame.fin, frame.data.decode()) == (Opcode.TEXT, True, text)


def test_the_same_text_is_framed_once_and_the_cache_stays_small():
    text = '{"type":"new_message"}'
    assert wsframes.text_frame(text) is wsframes.text_frame(text)
    for n in range(wsframes.CACHED * 2):
        wsframes.text_frame(f"event {n}")
    assert len(wsframes._frames) == wsframes.CACHED and text not in wsframes._frames


class Transport:
    """A Twisted TCP transport whose socket takes at most ``room`` bytes now."""

    TLS = False
    connected, disconnecting = True, False

    def __init__(self, room):
        self.room, self.sent, self.buffered = room, b"", b""

    def writeSomeData(self, data):
        taken = bytes(data[: self.room])
        self.sent += taken
        return len(taken)

    def write(self, data):
        self.buffered += bytes(data)


def test_a_frame_goes_straight_to_the_socket_when_nothing_waits():
    transport = Transport(room=100)
    wsframes.write_now(transport, b"abc", waiting=0)
    assert (transport.sent, transport.buffered) == (b"abc", b"")


def test_what_the_socket_does_not_take_is_buffered_in_order():
    transport = Transport(room=2)
    wsframes.write_now(transport, b"abcde", waiting=0)
    assert (transport.sent, transport.buffered) == (b"ab", b"cde")


def test_a_frame_queues_behind_unsent_bytes_and_on_a_tls_or_closing_transport():
    for transport, waiting in ((Transport(room=100), 1), (SimpleNamespace(**vars(Transport(100)), TLS=True), 0)):
        transport.write = Transport.write.__get__(transport)
        wsframes.write_now(transport, b"abc", waiting)
        assert (transport.sent, transport.buffered) == (b"", b"abc")
    closing = Transport(room=100)
    closing.disconnecting = True
    wsframes.write_now(closing, b"abc", 0)
    assert (closing.sent, closing.buffered) == (b"", b"abc")


def test_only_plain_connections_take_the_shared_frame():
    plain = SimpleNamespace(_perMessageCompress=None, autoFragmentSize=0, trackedTimings=None, logFrames=False,
                            logOctets=False, maxMessagePayloadSize=0, transport=Transport(room=100))
    assert wsframes.send_text(plain, "hi", waiting=0) and plain.transport.sent == wsframes.text_frame("hi")
    for change in ({"_perMessageCompress": object()}, {"autoFragmentSize": 10}, {"maxMessagePayloadSize": 1}):
        other = SimpleNamespace(**{**vars(plain), **change, "transport": Transport(room=100)})
        assert not wsframes.send_text(other, "hi", waiting=0) and other.transport.sent == b""
