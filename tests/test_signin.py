"""Failed sign-ins are limited per username and per client address (``project.signin``)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.SCS_SIGNIN_MAX_FAILURES = 3
    settings.SCS_SIGNIN_WINDOW = 300
    cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def member():
    return get_user_model().objects.create_user("member", password=PASSWORD)


def sign_in(client, username, password, address="203.0.113.1", url="/accounts/login/", **headers):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, headers=headers)


def fail(client, username, times, address="203.0.113.1", url="/accounts/login/"):
    for _ in range(times):
        assert sign_in(client, username, "wrong", address, url).status_code in (200, 429)


def test_the_right_password_is_refused_with_429_once_a_username_is_throttled(client, member):
    fail(client, "member", 3)
    response = sign_in(client, "member", PASSWORD, address="198.51.100.7")  # even from another address
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content and b"Wait up to 5 minutes" in response.content
    assert client.get("/").status_code == 302  # not signed in


def test_failures_below_the_limit_do_not_stop_a_sign_in(client, member):
    fail(client, "member", 2)
    assert sign_in(client, "member", PASSWORD).status_code == 302


def test_an_unrelated_user_from_another_address_is_unaffected(client, member):
    get_user_model().objects.create_user("other", password=PASSWORD)
    fail(client, "member", 5)
    assert sign_in(client, "other", PASSWORD, address="198.51.100.7").status_code == 302


def test_one_address_is_throttled_across_usernames(client, member):
    for name in ("a", "b", "c"):
        fail(client, name, 1)
    assert sign_in(client, "member", PASSWORD).status_code == 429
    assert sign_in(client, "member", PASSWORD, address="198.51.100.7").status_code == 302


def test_an_unknown_username_is_answered_like_a_known_one(client, member):
    fail(client, "member", 3, address="198.51.100.1")
    fail(client, "nobody", 3, address="198.51.100.2")
    known = sign_in(client, "member", "wrong", address="198.51.100.3")
    unknown = sign_in(client, "nobody", "wrong", address="198.51.100.4")
    assert known.status_code == unknown.status_code == 429
    assert b"Too many failed sign-ins" in known.content and b"Too many failed sign-ins" in unknown.content


def test_the_admin_sign_in_is_limited_too(client):
    get_user_model().objects.create_user("boss", password=PASSWORD, is_staff=True, is_superuser=True)
    fail(client, "boss", 3, url="/admin/login/")
    response = sign_in(client, "boss", PASSWORD, url="/admin/login/")
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content


def test_a_trusted_proxy_names_the_client(client, member, settings):
    settings.SCS_TRUSTED_PROXIES = ["127.0.0.1"]
    for number in range(3):
        sign_in(client, f"user{number}", "wrong", address="127.0.0.1", **{"X-Real-IP": "203.0.113.50"})
    # Another client behind the same proxy is not throttled by the first one's failures.
    assert sign_in(client, "member", PASSWORD, address="127.0.0.1", **{"X-Real-IP": "203.0.113.51"}).status_code == 302
    # An untrusted sender's X-Real-IP is ignored: its own address is counted.
    settings.SCS_TRUSTED_PROXIES = []
    for number in range(3):
        sign_in(client, f"user{number}", "wrong", address="198.51.100.9", **{"X-Real-IP": f"10.0.0.{number}"})
    assert sign_in(client, "member", PASSWORD, address="198.51.100.9").status_code == 429
