"""Channel-layer group names, in one place."""


def session_group(session_id):
    """The group every viewer of ``session_id`` joins."""
    return f"session.{session_id}"


def user_group(user_pk):
    """The group every open connection of one signed-in user joins."""
    return f"user.{user_pk}"


# Every process that wakes waiting agents listens here (realtime.wake_stream): the events of every session.
WAKE_GROUP = "wake"
