from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Shared context"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime import checks  # noqa: F401  (registers the settings checks)
