"""What every page of the app is rendered with, besides its own context.

``scs_base_template``: the template ``realtime/base.html`` extends (``SCS_BASE_TEMPLATE``);
``scs_ws_root``: the path the page's WebSocket URLs start with (``"/"`` + ``SCS_WS_PREFIX``).
"""

from django.shortcuts import render as django_render

from realtime import conf


def app_context():
    return {"scs_base_template": conf.get("SCS_BASE_TEMPLATE"), "scs_ws_root": "/" + conf.ws_prefix()}


def render(request, template_name, context=None, **kwargs):
    """``django.shortcuts.render`` with ``app_context()`` added; the view's own keys win."""
    return django_render(request, template_name, {**app_context(), **(context or {})}, **kwargs)
