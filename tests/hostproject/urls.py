from django.contrib.auth.views import LoginView
from django.urls import include, path

from tests.hostproject import views

urlpatterns = [
    path("members/sign-in/", LoginView.as_view(template_name="hostproject/login.html"), name="member-login"),
    path("announce/<str:session_id>/", views.announce, name="announce"),
    path("agents/", include("realtime.urls")),
]
