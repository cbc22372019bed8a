"""Under Daphne: one text frame to many WebSockets, built once and written at once.

Daphne hands each ``websocket.send`` to Autobahn, which encodes the text to UTF-8 and
frames it for every connection, then to Twisted, which only buffers it: each frame
to each viewer costs an epoll registration, a loop iteration, the ``send`` and an
epoll deregistration. A fan-out sends the very same ``str`` to every member
(``realtime.live.delivery`` encodes each event once), so here a connection without
permessage-deflate gets the frame bytes built once per text (a small cache keyed by
the text), written straight to its socket when nothing of it is waiting to be sent
(else queued behind what is). A connection with permessage-deflate (compressed per
connection) or Autobahn options that change framing takes Autobahn's path.
``python -m bench fanout`` measures both.
"""

import struct

CACHED = 64  # texts whose frames are kept: the events of the last few batches

_frames = {}  # text -> its unmasked, unfragmented WebSocket text frame


def text_frame(text):
    """The WebSocket frame (FIN, opcode 1, server side: unmasked) carrying ``text``."""
    frame = _frames.get(text)
    if frame is None:
        payload = text.encode("utf-8")
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 127, size)
        frame = header + payload
        if len(_frames) >= CACHED:
            del _frames[next(iter(_frames))]  # the oldest
        _frames[text] = frame
    return frame


def plain(protocol):
    """True when Autobahn would send this connection's text frames as ``text_frame`` builds them."""
    return (protocol._perMessageCompress is None and not protocol.autoFragmentSize
            and not protocol.trackedTimings and not protocol.logFrames and not protocol.logOctets)


def write_now(transport, data, waiting):
    """Write ``data`` to a Twisted TCP transport: straight to the socket when ``waiting`` (its unsent bytes)
    is 0, whatever the socket did not take (and everything otherwise) through Twisted's buffer."""
    if not waiting and not getattr(transport, "TLS", True) and transport.connected and not transport.disconnecting:
        written = transport.writeSomeData(data)
        if isinstance(written, int):  # else an error: the buffered write below lets Twisted close the connection
            if written == len(data):
                return
            data = data[written:]
    transport.write(data)


def send_text(protocol, text, waiting):
    """Send ``text`` on an open Daphne WebSocket protocol; False when Autobahn must do it (``plain`` says no)."""
    if not plain(protocol):
        return False
    frame = text_frame(text)
    limit = protocol.maxMessagePayloadSize
    if limit and len(frame) > limit:
        return False  # Autobahn refuses it with its own error
    write_now(protocol.transport, frame, waiting)
    return True
