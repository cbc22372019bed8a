"""System checks for a project that installs the app: what it needs from the host's settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from realtime import conf

SECRETS = {
    "SCS_API_KEY": "MCP clients cannot be admitted to the sidecar",
    "SCS_JWT_SECRET": "agent tokens cannot be issued or verified",
    "SCS_BROADCAST_SECRET": "the broadcast endpoint refuses every event from the sidecar",
}


@register()
def check_settings(app_configs, **kwargs):
    problems = []
    if not getattr(settings, "CHANNEL_LAYERS", {}).get("default"):
        problems.append(Error(
            "CHANNEL_LAYERS has no 'default' layer: live pages cannot receive anything.",
            hint='Add CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}} '
                 "(or channels_redis for several Daphne processes).",
            id="realtime.E001",
        ))
    from realtime.live.origins import parse_origin

    for origin in conf.get("SCS_ALLOWED_ORIGINS") or []:
        try:
            parse_origin(origin)
        except ValueError as exc:
            problems.append(Error(
                f"SCS_ALLOWED_ORIGINS: {exc}.",
                hint='List full origins, e.g. SCS_ALLOWED_ORIGINS = ["https://www.example.com"].',
                id="realtime.E002",
            ))
    for name, consequence in SECRETS.items():
        if not conf.get(name):
            problems.append(Warning(
                f"{name} is empty: {consequence}.",
                hint=f"Set {name} in settings or in the environment (a long random string, "
                     "the same for Daphne and the sidecar).",
                id="realtime.W001",
            ))
    return problems
