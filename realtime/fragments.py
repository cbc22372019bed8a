"""The HTML of one message and of one memory entry: built here, and only here, for every page.

The session page's first render, its "load earlier" answer and the live frames a page
receives (``page_event``, added in ``realtime.live.delivery`` once per event and in the
replay) all carry ``message_html``, so a message looks the same however it arrived. A
message's ``<li>`` does not depend on where it is placed: ``session.js`` nests it under
its parent when that is on the page (the one threading rule), and CSS hides "reply to an
earlier message" inside a thread. Likewise ``memory_row_html`` for the memory page, the
session page's memory tab and their live updates.
"""

import json

from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import mark_safe

from realtime import markdown
from realtime.timestamps import isoformat

AVATAR_COLOURS = 8
VISIBILITY_HINTS = {
    "public": "Everyone can read this",
    "private": "Only the sender can read this",
    "agent_only": "Agents of the sender's type can read this",
    "admin_only": "Only admins can read this",
}


def avatar_class(name):
    """``avatar-N`` for a name: the same colour for a name wherever it is shown."""
    return f"avatar-{sum(ord(ch) for ch in str(name)) % AVATAR_COLOURS}"


def initial(name):
    name = str(name).strip()
    return name[:1].upper() if name else "?"


def pretty_json(value):
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def shown_time(iso):
    """``2026-05-01 14:00:00 UTC`` from ``isoformat`` text (what a page shows before its script localises it)."""
    return iso[:10] + " " + iso[11:19] + " UTC"


def _rendered(template_name, context):
    """A template's output without the whitespace around it (it would show as text nodes between items)."""
    return mark_safe(get_template(template_name).render(context).strip())  # noqa: S308 - autoescaped template


def message_html(event):
    """A message envelope (``realtime.envelope.message_event``) as the ``<li>`` every page shows."""
    data = event["data"]
    return _rendered("realtime/_message.html", {
        "seq": event["seq"],
        "message": data,
        "avatar": avatar_class(data["sender"]),
        "initial": initial(data["sender"]),
        "hint": VISIBILITY_HINTS.get(data["visibility"], ""),
        "shown_time": shown_time(data["timestamp"]),
        "content_html": mark_safe(markdown.render(data["content"])),  # noqa: S308 - sanitized by realtime.markdown
        "metadata_json": pretty_json(data["metadata"]) if data["metadata"] else "",
    })


def page_event(event):
    """The frame a page receives for a message: the envelope plus its ``html``."""
    return {**event, "html": message_html(event)}


def memory_row_html(record, now=None):
    """A memory record (``realtime.envelope.memory_record``) as the ``<tr>`` of the memory page and memory tab."""
    expires_at = record["expires_at"]
    now = isoformat(now or timezone.now())
    value_json = pretty_json(record["value"])
    return _rendered("realtime/_memory_row.html", {
        "entry": record,
        "avatar": avatar_class(record["agent_id"]),
        "initial": initial(record["agent_id"]),
        "value_json": value_json,
        "long_value": len(value_json) > 120,
        "metadata_json": pretty_json(record["metadata"]) if record["metadata"] else "",
        "expired": expires_at is not None and expires_at <= now,
        "expires_shown": shown_time(expires_at)[:16] + " UTC" if expires_at else "",
        "updated_shown": shown_time(record["updated_at"])[:16] + " UTC",
    })
