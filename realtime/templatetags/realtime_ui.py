"""Small template helpers for the realtime pages (names shown as avatars come from ``realtime.fragments``)."""

from django import template

from realtime import fragments

register = template.Library()


@register.filter
def avatar_class(name):
    return fragments.avatar_class(name)


@register.filter
def initial(name):
    return fragments.initial(name)


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
