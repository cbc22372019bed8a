"""Channel-layer group names, in one place."""


def session_group(session_id):
    """The group every viewer of ``session_id`` joins."""
    return f"session.{session_id}"
