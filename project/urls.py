from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin).
    path("favicon.ico", RedirectView.as_view(url=static("realtime/favicon.svg"))),
    path("", include("realtime.urls")),
]
