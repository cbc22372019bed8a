"""Who a message mentions: ``@agent_id`` in its content, and the ids listed in ``metadata["mentions"]``.

One rule for storing mentions (the inbox) and for waking the agents waiting on their inbox.
"""

import re

from realtime.credentials import AGENT_ID_PATTERN

MAX_MENTIONS = 50  # per message: the rest are ignored
ID_RE = re.compile(AGENT_ID_PATTERN)
# An @ that starts a word (not inside an e-mail address), then an agent id; a sentence's
# closing punctuation after it is not part of the id.
MENTION_RE = re.compile(r"(?<![\w@.:-])@([A-Za-z0-9_][A-Za-z0-9_.:@-]{0,99})")
TRAILING = ".:-@"


def mentioned(content, metadata):
    """The agent ids a message mentions, each once, in order of appearance (at most ``MAX_MENTIONS``)."""
    found = [match.group(1).rstrip(TRAILING) for match in MENTION_RE.finditer(content or "")]
    listed = metadata.get("mentions") if isinstance(metadata, dict) else None
    if isinstance(listed, list):
        found.extend(value for value in listed if isinstance(value, str))
    ids = []
    for agent_id in found:
        if agent_id and ID_RE.fullmatch(agent_id) and agent_id not in ids:
            ids.append(agent_id)
            if len(ids) == MAX_MENTIONS:
                break
    return ids


def of_event(event):
    """The agent ids an envelope's message mentions."""
    data = event.get("data") or {}
    return mentioned(data.get("content"), data.get("metadata"))
