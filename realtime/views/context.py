"""What every page of the app is rendered with, besides its own context.

``scs_base_template``: the template ``realtime/base.html`` extends (``SCS_BASE_TEMPLATE``);
``scs_ws_root``: the path the page's WebSocket URLs start with (``"/"`` + ``SCS_WS_PREFIX``);
``scs_final_closes``: the close codes after which a page's socket stops reconnecting, with what it
then says (``realtime.live.closecodes.FINAL``, as JSON for a ``data-`` attribute).
"""

import json

from django.shortcuts import render as django_render

from realtime import conf
from realtime.live.closecodes import FINAL


def app_context():
    return {"scs_base_template": conf.get("SCS_BASE_TEMPLATE"), "scs_ws_root": "/" + conf.ws_prefix(),
            "scs_final_closes": json.dumps(FINAL, ensure_ascii=False)}


def render(request, template_name, context=None, **kwargs):
    """``django.shortcuts.render`` with ``app_context()`` added; the view's own keys win."""
    return django_render(request, template_name, {**app_context(), **(context or {})}, **kwargs)
