from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from . import signin

admin.site.login_form = signin.AdminSignInForm
urlpatterns = [
    # Both sign-in forms count failures (project.signin), ahead of the routes they replace.
    path("admin/login/", signin.admin_login),
    path("admin/", admin.site.urls),
    path("accounts/login/", signin.SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin).
    path("favicon.ico", RedirectView.as_view(url=static("realtime/favicon.svg"))),
    path("", include("realtime.urls")),
]
