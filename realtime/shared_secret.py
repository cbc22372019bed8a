"""Bearer credentials: the ``Authorization: Bearer …`` header parser, and the broadcast secret
that Daphne's broadcast door and the operators' ``/health`` details require."""

import hmac

from realtime import conf


def bearer(authorization):
    """The credential of an ``Authorization: Bearer …`` header value, else ""."""
    scheme, _, presented = (authorization or "").partition(" ")
    return presented.strip() if scheme.lower() == "bearer" else ""


def holds_secret(authorization):
    """True when the ``Authorization`` header carries ``SCS_BROADCAST_SECRET`` (compared in constant time).

    Operators present the same secret for the details of ``/health``; agents never hold it.
    """
    expected = conf.get("SCS_BROADCAST_SECRET")
    presented = bearer(authorization)
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), expected.encode())
