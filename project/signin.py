"""Sign-in with a limit on failures, per username and per client address.

After ``SCS_SIGNIN_MAX_FAILURES`` failed sign-ins within ``SCS_SIGNIN_WINDOW``
seconds, for one username or from one address, every further attempt for it is
answered 429 without checking the password, until the window has passed. The
answer is the same whether or not the username exists. Counts live in Django's
default cache: per process unless ``SCS_CACHE_URL`` names a shared one.
The sign-in page and the admin's both go through it.
"""

import hashlib
import ipaddress

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from realtime import conf

THROTTLED = "throttled"


def client_address(request):
    """The client's address: ``REMOTE_ADDR``, or ``X-Real-IP`` when a proxy in ``SCS_TRUSTED_PROXIES`` sent it."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        remote = ipaddress.ip_address(address)
    except ValueError:
        return address
    proxies = [ipaddress.ip_network(network, strict=False) for network in conf.get("SCS_TRUSTED_PROXIES")]
    forwarded = request.headers.get("X-Real-IP", "").strip()
    if forwarded and any(remote in network for network in proxies):
        return forwarded[:64]
    return address


def _keys(request, username):
    def key(kind, value):
        return f"scs:signin:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"

    return key("user", username.strip().lower()), key("addr", client_address(request))


def throttled(request, username):
    limit = conf.get("SCS_SIGNIN_MAX_FAILURES")
    return any((cache.get(key) or 0) >= limit for key in _keys(request, username))


def count_failure(request, username):
    window = conf.get("SCS_SIGNIN_WINDOW")
    for key in _keys(request, username):
        if not cache.add(key, 1, window):  # the window runs from the first failure
            try:
                cache.incr(key)
            except ValueError:  # expired in between
                cache.set(key, 1, window)


def forget_failures(request, username):
    """A successful sign-in clears its username's count (not its address's)."""
    cache.delete(_keys(request, username)[0])


class ThrottledForm:
    """``clean`` for an ``AuthenticationForm``: refuse while throttled, count failures."""

    def clean(self):
        username = str(self.cleaned_data.get("username") or "")
        if throttled(self.request, username):
            minutes = max(1, round(conf.get("SCS_SIGNIN_WINDOW") / 60))
            raise ValidationError(
                "Too many failed sign-ins for this account or from this address. "
                f"Wait up to {minutes} minute{'s' if minutes != 1 else ''} and try again.",
                code=THROTTLED,
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            count_failure(self.request, username)
            raise
        forget_failures(self.request, username)
        return cleaned


class SignInForm(ThrottledForm, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledForm, AdminAuthenticationForm):
    pass


def was_throttled(form):
    return form is not None and form.has_error(NON_FIELD_ERRORS, THROTTLED)


class SignInView(LoginView):
    """Django's ``LoginView``, answering 429 while throttled."""

    authentication_form = SignInForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if was_throttled(form):
            response.status_code = 429
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["throttled"] = was_throttled(context.get("form"))
        return context


def admin_login(request, extra_context=None):
    """The admin's sign-in (with ``admin.site.login_form = AdminSignInForm``), answering 429 while throttled."""
    response = admin.site.login(request, extra_context)
    if was_throttled(getattr(response, "context_data", {}).get("form")):
        response.status_code = 429
    return response
