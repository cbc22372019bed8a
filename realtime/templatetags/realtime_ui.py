"""Small template helpers for the realtime pages (the scripts mirror them)."""

from django import template

register = template.Library()

AVATAR_COLOURS = 8
VISIBILITY_HINTS = {
    "public": "Everyone can read this",
    "private": "Only the sender can read this",
    "agent_only": "Agents of the sender's type can read this",
    "admin_only": "Only admins can read this",
}


@register.filter
def avatar_class(name):
    """``avatar-N`` for a name; ``session.js`` computes the same N (sum of code points)."""
    return f"avatar-{sum(ord(ch) for ch in str(name)) % AVATAR_COLOURS}"


@register.filter
def initial(name):
    name = str(name).strip()
    return name[:1].upper() if name else "?"


@register.filter
def visibility_hint(level):
    return VISIBILITY_HINTS.get(level, "")


@register.simple_tag(takes_context=True)
def query_with(context, **changes):
    """The current query string with ``changes`` applied (empty values removed)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
