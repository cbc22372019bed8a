"""Open browser connections follow their user's account.

Each connection of a signed-in user joins ``user.<pk>``. When the user signs out
or the account is saved (deactivated, staff removed, password changed) or
deleted, every such connection is asked to close with ``CLOSE_RECHECK``; the page
reconnects at once and is authenticated afresh, so it keeps exactly the rights
the account has now, or is refused.

This is the instant path, for changes made where the channel layer reaches.
``realtime.live.access`` catches every other change (queryset updates, other processes
on the in-memory layer) within a second.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.live.groups import user_group


def recheck(user_pk):
    """Ask every open connection of user ``user_pk`` to reconnect (after the current commit)."""
    layer = get_channel_layer()
    if layer is not None and user_pk is not None:
        transaction.on_commit(
            lambda: async_to_sync(layer.group_send)(user_group(user_pk), {"type": "viewer.recheck"}), robust=True
        )


def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        recheck(user.pk)


def on_user_saved(sender, instance, created, update_fields=None, **kwargs):
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return  # a new account has no connections; signing in only stamps last_login
    recheck(instance.pk)


def on_user_deleted(sender, instance, **kwargs):
    recheck(instance.pk)
