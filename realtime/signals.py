"""``message_stored`` is sent once a message's transaction has committed.

Its one argument, ``event``, is the envelope (``realtime.envelope``). The sidecar
connects the broadcast bridge to it; a host project may connect its own receiver.
"""

from django.dispatch import Signal

message_stored = Signal()
