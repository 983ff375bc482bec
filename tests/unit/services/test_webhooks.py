"""The webhooks' pure parts: which URLs are taken, the backoff, the signature."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from einvoice.errors import WebhookError
from einvoice.services import webhooks


@pytest.mark.parametrize(
    ("url", "local_http"),
    [
        ("https://erp.example.org/hooks/einvoice", False),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost/x", True),
    ],
)
def test_https_is_taken_and_http_to_this_host_when_allowed(url: str, local_http: bool) -> None:
    assert webhooks.check_url(url, allow_http_localhost=local_http) == url


@pytest.mark.parametrize(
    ("url", "local_http"),
    [
        ("http://127.0.0.1:8080/x", False),  # not allowed by the setting
        ("http://10.0.0.1/x", True),  # allowed only to this host
        ("http://localhost.example.org/x", True),
        ("https://user:secret@example.org/", False),
        ("ftp://example.org/", False),
        ("example.org/hook", False),
        ("https://example.org/" + "a" * 2000, False),
    ],
)
def test_other_urls_are_refused(url: str, local_http: bool) -> None:
    with pytest.raises(WebhookError):
        webhooks.check_url(url, allow_http_localhost=local_http)


def test_the_backoff_doubles_with_jitter_and_stops_at_an_hour() -> None:
    assert webhooks.backoff(1, 30, rng=lambda: 0.5) == timedelta(seconds=30)
    assert webhooks.backoff(3, 30, rng=lambda: 0.5) == timedelta(seconds=120)
    assert webhooks.backoff(3, 30, rng=lambda: 0.0) == timedelta(seconds=60)
    assert webhooks.backoff(3, 30, rng=lambda: 0.999) < timedelta(seconds=180)
    assert webhooks.backoff(40, 30, rng=lambda: 0.5) == timedelta(hours=1)


def test_the_signature_is_the_hmac_sha256_of_the_body() -> None:
    body = b'{"code":"AB"}'
    assert webhooks.signature("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
