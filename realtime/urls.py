from django.urls import path

from realtime.views import broadcast, health, pages

app_name = "realtime"

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("sessions/<str:session_id>/", pages.session_detail, name="session"),
    path("broadcast/<str:session_id>", broadcast.broadcast, name="broadcast"),
    path("health", health.health, name="health"),
]
