from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Shared context"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save

        from realtime import checks  # noqa: F401  (registers the settings checks)
        from realtime.live import revocation

        user_logged_out.connect(revocation.on_logged_out, dispatch_uid="realtime.revocation.logged_out")
        post_save.connect(revocation.on_user_saved, sender=get_user_model(), dispatch_uid="realtime.revocation.saved")
        post_delete.connect(revocation.on_user_deleted, sender=get_user_model(),
                            dispatch_uid="realtime.revocation.deleted")
