"""How every time leaves this code base for a machine: ISO 8601 in UTC, to the microsecond, ending in Z.

One fixed width (``2026-05-01T14:00:00.000000Z``), so comparing two such strings compares the times.
Tool results, resources, message envelopes, the pages' JSON and the live dashboard all use ``isoformat``;
HTML shows times through Django's ``date`` filter instead.
"""

from datetime import UTC, datetime


def isoformat(moment):
    """An aware datetime, or seconds since the epoch, as ISO 8601 UTC text; None stays None."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def now():
    """This moment, as ``isoformat`` writes it."""
    return isoformat(datetime.now(UTC))
