"""Suppliers' webhooks: each new response to a supplier (Invoice Response or MLR) POSTed to the URL
it registered (``PUT /v1/webhook``), signed, from the worker queue, never in a stage's write.

- ``register`` keeps the URL (https; http only to this host when ``allow_http_localhost``) and a
  new secret, shown once; registering again rotates it. ``show`` never shows it.
- ``relay_once`` (a poller of every relay process, beside the outbox relay): records a pending
  delivery for each new response of a supplier with a webhook (``WebhookStore.scan``), then sends
  the due ones to the queue (the ``webhook_deliver`` actor).
- ``deliver`` (the actor): one POST of the response as JSON (``GET /v1/documents/{id}/responses``'s
  form plus ``document_id``) with ``X-Einvoice-Signature: sha256=<hex HMAC-SHA256 of the body>``
  and ``X-Einvoice-Delivery: <delivery id>``. A 2xx delivers it; anything else is retried after
  ``backoff`` (exponential, with jitter), and after ``max_attempts`` it is dead-lettered (listed
  in ``show``'s ``recent_failures``). It never raises: a receiver's failure is the delivery's,
  not the queue's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from einvoice.errors import NotFoundError, WebhookError
from einvoice.services.responses import response_view
from einvoice.store.ports import WebhookStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Einvoice-Signature"
DELIVERY_HEADER = "X-Einvoice-Delivery"
MAX_BACKOFF = timedelta(hours=1)
#: How long a delivery sent to the queue is left alone before the relay sends it again (a worker
#: that died with it in hand).
LEASE = timedelta(minutes=5)
SCAN_BATCH = 500
RECENT_FAILURES = 20

#: POSTs ``body`` with ``headers`` to ``url``; returns the status code or raises (connection refused,
#: timeout).
Post = Callable[[str, bytes, Mapping[str, str]], int]


def _now() -> datetime:
    return datetime.now(UTC)


def check_url(url: str, *, allow_http_localhost: bool) -> str:
    """``url`` when the engine may deliver to it; WebhookError otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > 2000 or not parts.hostname or parts.username or parts.password:
        raise WebhookError("url: an absolute https:// URL without credentials, at most 2000 characters")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_http_localhost and _local(parts.hostname):
        return url
    raise WebhookError("url: must be https:// (http:// only to 127.0.0.1 or localhost, when the engine allows it)")


def _local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(
    store: WebhookStore, supplier_id: str, url: str, *, allow_http_localhost: bool
) -> tuple[dict[str, Any], str]:
    """Register or replace the supplier's webhook with a new secret: (its view, the secret)."""
    url = check_url(url, allow_http_localhost=allow_http_localhost)
    secret = secrets.token_hex(32)
    view = store.put(supplier_id, url, secret, now=_now())
    return _shown(view.url, view.created_at, view.rotated_at), secret


def _shown(url: str, created_at: datetime, rotated_at: datetime | None) -> dict[str, Any]:
    return {
        "url": url,
        "created_at": created_at.isoformat(),
        "rotated_at": rotated_at.isoformat() if rotated_at else None,
    }


def show(store: WebhookStore, supplier_id: str) -> dict[str, Any]:
    """The supplier's webhook (never its secret) and its recent dead-lettered deliveries."""
    view = store.get(supplier_id)
    if view is None:
        raise NotFoundError('no webhook registered: PUT /v1/webhook with {"url": "https://…"}')
    failures = store.failures(supplier_id, limit=RECENT_FAILURES)
    return {
        **_shown(view.url, view.created_at, view.rotated_at),
        "recent_failures": [
            {
                "delivery_id": f.id,
                "document_id": f.document_id,
                "response_id": f.response_id,
                "attempts": f.attempts,
                "last_error": f.last_error,
                "failed_at": f.at.isoformat() if f.at else None,
            }
            for f in failures
        ],
    }


def remove(store: WebhookStore, supplier_id: str) -> None:
    if not store.delete(supplier_id):
        raise NotFoundError("no webhook registered")


def relay_once(store: WebhookStore, send: Callable[[str], None], *, now: datetime | None = None) -> int:
    """Record deliveries for new responses and send the due ones to the queue; return how many were sent."""
    now = now or _now()
    store.scan(now=now, limit=SCAN_BATCH)
    due = store.claim_due(now=now, lease=LEASE, limit=SCAN_BATCH)
    for delivery_id in due:
        send(delivery_id)
    return len(due)


def payload(response: Any) -> bytes:
    """The JSON body of a delivery: the response as the API lists it, with its document's id."""
    view = response_view(response)
    body = {"document_id": view.document_id, **view.to_dict()}
    body["issued_at"] = body["issued_at"].replace("+00:00", "Z")  # UTC as the API writes it
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def backoff(attempt: int, base_seconds: float, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait after the ``attempt``-th failed attempt: ``base * 2**(attempt-1)``, times 0.5 to 1.5
    (jitter, so that receivers coming back are not hit by every delivery at once), at most an hour."""
    wait = timedelta(seconds=base_seconds * 2 ** min(attempt - 1, 30) * (0.5 + rng()))
    return min(wait, MAX_BACKOFF)


def deliver(
    store: WebhookStore,
    delivery_id: str,
    post: Post,
    *,
    max_attempts: int,
    backoff_seconds: float,
    now: Callable[[], datetime] = _now,
) -> str:
    """One attempt of the delivery ``delivery_id``: ``delivered``, ``retry``, ``dead``, or ``gone``
    (no longer pending, or the webhook was removed)."""
    job = store.job(delivery_id)
    if job is None:
        return "gone"
    body = payload(job.response)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(job.secret, body),
        DELIVERY_HEADER: job.id,
    }
    try:
        status = post(job.url, body, headers)
        error = None if 200 <= status < 300 else f"the receiver answered {status}"
    except Exception as exc:  # any failure to reach the receiver is the delivery's, retried
        error = f"{type(exc).__name__}: {exc}"[:500]
    attempt = job.attempts + 1
    at = now()
    if error is None:
        store.record(delivery_id, error=None, now=at, retry_at=None)
        return "delivered"
    last = attempt >= max_attempts
    retry_at = None if last else at + backoff(attempt, backoff_seconds)
    store.record(delivery_id, error=error, now=at, retry_at=retry_at)
    log.warning(
        "webhook delivery %s attempt %d failed%s: %s",
        delivery_id,
        attempt,
        ", dead-lettered" if last else "",
        error,
        extra={"delivery_id": delivery_id, "document_id": job.response.document_id},
    )
    return "dead" if last else "retry"


def http_post(timeout: float) -> Post:
    """A ``Post`` by httpx, without following redirects."""
    import httpx

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return httpx.post(url, content=body, headers=dict(headers), timeout=timeout, follow_redirects=False).status_code

    return post
