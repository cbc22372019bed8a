"""``message_stored`` is sent once a message's transaction has committed, after it was handed to the publisher.

Its one argument, ``event``, is the envelope (``realtime.envelope``). It is an
extension point for host projects (e.g. to notify another system); live viewers
do not depend on it: ``realtime.publisher`` publishes every message itself.
"""

from django.dispatch import Signal

message_stored = Signal()
