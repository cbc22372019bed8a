"""What the app needs from a host project's settings, URLs and templates, checked in-process."""

import re
from pathlib import Path

import pytest
from django.urls import include, path

from realtime import conf
from realtime.checks import check_settings
from realtime.client_config import mcp_url
from realtime.models import Session

APP = Path(__file__).resolve().parent.parent / "realtime"

# A host that mounts the app under /agents/ and has no admin and no auth URLs.
urlpatterns = [path("agents/", include("realtime.urls"))]


def test_a_setting_wins_over_the_environment_which_wins_over_the_default(settings, monkeypatch):
    monkeypatch.setenv("SCS_BROADCAST_SECRET", "from-the-environment")
    settings.SCS_BROADCAST_SECRET = "from-settings"
    assert conf.get("SCS_BROADCAST_SECRET") == "from-settings"
    del settings.SCS_BROADCAST_SECRET
    assert conf.get("SCS_BROADCAST_SECRET") == "from-the-environment"
    monkeypatch.delenv("SCS_BROADCAST_SECRET")
    assert conf.get("SCS_BROADCAST_SECRET") == ""


def test_only_secrets_and_the_broadcast_url_come_from_the_environment(settings, monkeypatch):
    del settings.SCS_MAX_CONTENT_LENGTH
    monkeypatch.setenv("SCS_MAX_CONTENT_LENGTH", "5")
    assert conf.get("SCS_MAX_CONTENT_LENGTH") == 100_000
    del settings.SCS_BROADCAST_URL
    monkeypatch.setenv("SCS_BROADCAST_URL", "http://10.0.0.5:8000/agents")
    assert conf.get("SCS_BROADCAST_URL") == "http://10.0.0.5:8000/agents"


def test_the_sidecar_address_has_defaults_when_the_host_sets_none(settings):
    del settings.SCS_HOST
    del settings.SCS_MCP_PORT
    assert mcp_url() == "http://127.0.0.1:23456/mcp/"
    settings.SCS_HOST, settings.SCS_MCP_PORT = "0.0.0.0", 9000
    assert mcp_url() == "http://127.0.0.1:9000/mcp/"


@pytest.mark.parametrize(("value", "expected"), [("", ""), ("/", ""), ("agents", "agents/"),
                                                 ("/agents/", "agents/"), ("a/b", "a/b/")])
def test_ws_prefix_is_a_relative_path(settings, value, expected):
    settings.SCS_WS_PREFIX = value
    assert conf.ws_prefix() == expected


def test_missing_secrets_and_channel_layer_are_reported_by_checks(settings):
    settings.SCS_API_KEY = ""
    settings.CHANNEL_LAYERS = {}
    found = {(problem.id, problem.msg.split(" ")[0]) for problem in check_settings(None)}
    assert ("realtime.W001", "SCS_API_KEY") in found
    assert ("realtime.E001", "CHANNEL_LAYERS") in found
    assert ("realtime.W001", "SCS_JWT_SECRET") not in found


@pytest.mark.django_db
def test_pages_work_under_a_prefix_without_admin_or_logout_urls(settings, client, django_user_model):
    settings.ROOT_URLCONF = __name__
    settings.SCS_WS_PREFIX = "agents/"
    session = Session.objects.create(purpose="mounted", created_by="test")
    client.force_login(django_user_model.objects.create_user("viewer", is_staff=True))
    dashboard = client.get("/agents/")
    assert dashboard.status_code == 200
    text = dashboard.content.decode()
    assert f'href="/agents/sessions/{session.id}/"' in text
    assert 'data-ws-path="/agents/ws/dashboard/"' in text
    assert "Sign out" not in text and ">Admin<" not in text
    page = client.get(f"/agents/sessions/{session.id}/").content.decode()
    assert f'data-ws-path="/agents/ws/{session.id}/"' in page


@pytest.mark.django_db
def test_the_standalone_layout_keeps_sign_out_and_admin(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))
    text = client.get("/").content.decode()
    assert "Sign out" in text and ">Admin<" in text
    assert 'data-ws-path="/ws/dashboard/"' in text


def test_no_template_or_script_hard_codes_an_app_path():
    """Paths come from {% url %} or data attributes, so the pages work wherever the app is mounted."""
    absolute = re.compile(r"""(["'`])/(ws|accounts|admin|broadcast|sessions|memory|static)/""")
    offenders = [
        f"{file.relative_to(APP)}: {match.group(0)}"
        for file in [*APP.glob("templates/**/*.html"), *APP.glob("static/**/*.js")]
        for match in absolute.finditer(file.read_text())
    ]
    assert offenders == []


def test_the_app_brings_no_site_wide_templates():
    """A host's own login and error pages are not replaced by installing the app."""
    assert sorted(p.name for p in (APP / "templates").iterdir()) == ["realtime"]
