from django.urls import path

from realtime.views import broadcast, health, pages, participate

app_name = "realtime"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("sessions/<str:session_id>/", pages.session_detail, name="session"),
    path("sessions/new", participate.create_session, name="session_create"),
    path("sessions/<str:session_id>/messages", pages.session_messages, name="session_messages"),
    path("sessions/<str:session_id>/post", participate.post_message, name="session_post"),
    path("sessions/<str:session_id>/close", participate.close_session, name="session_close"),
    path("sessions/<str:session_id>/reopen", participate.reopen_session, name="session_reopen"),
    path("sessions/<str:session_id>/purpose", participate.edit_purpose, name="session_purpose"),
    path("sessions/<str:session_id>/export.<str:fmt>", pages.session_export, name="session_export"),
    path("memory/", pages.memory, name="memory"),
    path("broadcast/<str:session_id>", broadcast.broadcast, name="broadcast"),
    path("broadcast/", broadcast.broadcast_many, name="broadcast-many"),
    path("health", health.health, name="health"),
]
