"""The HTML of one message and of one memory entry: built here, and only here, for every page.

The session page's first render, its "load earlier" answer and the live frames a page
receives (``page_event``, added in ``realtime.live.delivery`` once per event and in the
replay) all carry ``message_html``, so a message looks the same however it arrived. A
message's ``<li>`` does not depend on where it is placed: ``session.js`` nests it under
its parent when that is on the page (the one threading rule), and CSS hides "reply to an
earlier message" inside a thread. Likewise ``memory_row_html`` for the memory page, the
session page's memory tab and their live updates.
"""

import collections
import json
import threading

from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import mark_safe

from realtime import conf, markdown
from realtime.envelope import encode
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


class RenderedCache:
    """Fragments already built, by the exact envelope they were built from, up to ``limit`` characters in all.

    Replays (one per reconnecting viewer) and first renders of recent messages then reuse the
    live delivery's render instead of building the same HTML once per viewer. Thread-safe: replays
    read in worker threads.
    """

    def __init__(self, limit):
        self.limit, self.size = limit, 0
        self.entries = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            html = self.entries.get(key)
            if html is not None:
                self.entries.move_to_end(key)
            return html

    def put(self, key, html):
        cost = len(key) + len(html)
        if cost > self.limit:
            return
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = html
            self.size += cost
            while self.size > self.limit:
                old_key, old_html = self.entries.popitem(last=False)
                self.size -= len(old_key) + len(old_html)


CACHE_CHARS = 4_000_000  # envelopes and their fragments kept (characters); a 100,000-character message fits
_built = RenderedCache(CACHE_CHARS)


def message_html(event):
    """A message envelope (``realtime.envelope.message_event``) as the ``<li>`` every page shows."""
    key = f"{bool(conf.get('SCS_MARKDOWN_IMAGES'))}{encode(event)}"
    html = _built.get(key)
    if html is None:
        html = build_message_html(event)
        _built.put(key, html)
    return html


def build_message_html(event):
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
        # Where a live row goes among the others: the pages list by agent, session (global first), key.
        "order": "\u0001".join((record["agent_id"], record["session_id"] or "", record["key"])),
        "avatar": avatar_class(record["agent_id"]),
        "initial": initial(record["agent_id"]),
        "value_json": value_json,
        "long_value": len(value_json) > 120,
        "metadata_json": pretty_json(record["metadata"]) if record["metadata"] else "",
        "expired": expires_at is not None and expires_at <= now,
        "expires_shown": shown_time(expires_at)[:16] + " UTC" if expires_at else "",
        "updated_shown": shown_time(record["updated_at"])[:16] + " UTC",
    })
