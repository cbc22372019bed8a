from django.urls import path

from realtime.views import broadcast, health, pages

app_name = "realtime"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("sessions/<str:session_id>/", pages.session_detail, name="session"),
    path("sessions/<str:session_id>/messages", pages.session_messages, name="session_messages"),
    path("memory/", pages.memory, name="memory"),
    path("broadcast/<str:session_id>", broadcast.broadcast, name="broadcast"),
    path("health", health.health, name="health"),
]
