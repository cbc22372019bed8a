"""The deployment surface on real processes: /health, the broadcast door behind a proxy, sign-in, TLS cookies."""

import json
import re
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.stack import ROOT

SESSION_ID = "session_0123456789abcdef"


# /health: open liveness, details for the operator


@pytest.mark.parametrize("which", ["daphne", "sidecar"])
def test_health_details_need_the_operator_secret(stack, which):
    url = f"{stack.app_url}/health" if which == "daphne" else f"http://127.0.0.1:{stack.mcp_port}/health"
    for headers in ({}, {"Authorization": "Bearer wrong-secret"}, {"X-API-Key": stack.api_key},
                    {"Authorization": f"Bearer {stack.api_key}"}):
        answer = httpx.get(url, headers=headers, timeout=5)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"}), headers
    detailed = httpx.get(url, headers=stack.operator_headers(), timeout=5).json()
    assert detailed["status"] == "ok"
    if which == "daphne":
        assert isinstance(detailed["sessions"], int) and detailed["channel_layer"]
    else:
        assert {"sent", "dropped", "last_error"} <= set(detailed["bridge"])


# The broadcast door refuses what came through a proxy


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
def test_a_broadcast_relayed_by_a_proxy_is_refused_from_loopback_with_the_secret(stack, header):
    event = {"type": "new_message", "session_id": SESSION_ID, "seq": 1,
             "data": {"id": 1, "sender": "mallory", "sender_type": "claude", "content": "relayed",
                      "visibility": "public", "metadata": {}, "parent_message_id": None,
                      "timestamp": "2026-01-01T00:00:00Z"}}
    answer = httpx.post(f"{stack.app_url}/broadcast/{SESSION_ID}", content=json.dumps(event),
                        headers={**stack.operator_headers(), header: "127.0.0.1",
                                 "Content-Type": "application/json"}, timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (403, "PROXIED")
    # The same request sent directly gets past the door (404: no such session).
    direct = httpx.post(f"{stack.app_url}/broadcast/{SESSION_ID}", content=json.dumps(event),
                        headers={**stack.operator_headers(), "Content-Type": "application/json"}, timeout=5)
    assert direct.json()["code"] == "SESSION_NOT_FOUND"


# Sign-in is limited per username and per address, in the Daphne process


def test_sign_in_is_throttled_after_repeated_failures(fresh_stack):
    stack = fresh_stack(SCS_SIGNIN_MAX_FAILURES=4, SCS_TRUSTED_PROXIES="127.0.0.1")
    for name in ("member", "other"):
        stack.manage("shell", "-c", f"from django.contrib.auth import get_user_model; "
                     f"get_user_model().objects.create_user({name!r}, password='a-long-password')")

    def attempt(username, password, address):
        with httpx.Client(base_url=stack.http_url, timeout=5) as browser:
            page = browser.get("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            # Daphne sees 127.0.0.1 for every client here, so name the client through a trusted proxy header.
            return browser.post("/accounts/login/", data={"username": username, "password": password,
                                                          "csrfmiddlewaretoken": token},
                                headers={"X-Real-IP": address})

    for _ in range(4):
        assert attempt("member", "wrong", "203.0.113.1").status_code == 200
    throttled = attempt("member", "a-long-password", "203.0.113.1")
    assert throttled.status_code == 429 and "Too many failed sign-ins" in throttled.text
    assert "sessionid" not in throttled.cookies
    assert attempt("other", "a-long-password", "203.0.113.1").status_code == 429  # the address is throttled
    signed_in = attempt("other", "a-long-password", "203.0.113.2")  # an unrelated user, elsewhere
    assert signed_in.status_code == 302 and "sessionid" in signed_in.cookies


# Secure cookies with SCS_TLS


def settings_values(**env):
    code = ("import json, project.settings as s; print(json.dumps([getattr(s, n, None) for n in "
            "('SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER')]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", **env})
    return json.loads(result.stdout)


def test_the_tls_switch_sets_secure_cookies_and_trusts_the_proxy_scheme(tmp_path):
    assert settings_values(SCS_DATA_DIR=str(tmp_path)) == [None, None, None]
    assert settings_values(SCS_DATA_DIR=str(tmp_path), SCS_TLS="1") == [
        True, True, ["HTTP_X_FORWARDED_PROTO", "https"]]


@pytest.mark.django_db
def test_with_tls_the_sign_in_cookies_are_secure(client, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    get_user_model().objects.create_user("member", password="a-long-password")
    page = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.wsgi_request.is_secure()
    assert page.cookies["csrftoken"]["secure"]
    response = client.post("/accounts/login/", {"username": "member", "password": "a-long-password"},
                           headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 302 and response.cookies["sessionid"]["secure"]
