"""The push connector: each journal entry sent to the ERP's URL by HTTP POST, signed, keyed by its
id so that the ERP applies it once however often it arrives.

The request:

    POST <EINVOICE_ERP_URL>
    Content-Type: application/json
    Authorization: Bearer <EINVOICE_ERP_TOKEN>            (when set)
    Idempotency-Key: je_<document id>                     (the entry id)
    X-Einvoice-Signature: sha256=<hex HMAC-SHA256 of the body with EINVOICE_ERP_SIGNING_SECRET>

    <the entry JSON, UTF-8, keys sorted, no spaces>

To verify, the ERP computes HMAC-SHA256 over the raw body bytes with the shared secret and compares
its hex digest with the header's, in constant time (``verify_signature``); the body must not be
parsed and written again first. The ERP must apply an entry once per ``Idempotency-Key`` and answer
2xx to a repeat as to the first.

Answers: 2xx confirms the entry. A timeout, a connection refused or dropped, 408, 409 (the key is
being processed), 425, 429 and 5xx are worth another try (``ErpDeliveryError``, transient: the
stage retries with exponential backoff and jitter, then the document is ``dead``). Any other 4xx
means the ERP refuses the entry as it is (``ErpRefusedError``, permanent: ``dead`` at once, with
the ERP's answer as the cause).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from einvoice.errors import ErpDeliveryError, ErpRefusedError

SIGNATURE_HEADER = "X-Einvoice-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_STATUSES = frozenset({408, 409, 425, 429})


def body_of(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry is sent as (and signed over)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` with ``secret`` (what the ERP checks)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


class PushSender:
    """Sends entries to ``url`` (``httpx.Client``, thread-safe), each on a connection of its own.

    Never over a kept-alive connection: an ERP that wrote its answer twice (found by the fault
    drills) leaves the second copy buffered on the connection, and the next entry sent on it
    reads that copy as its own 2xx, confirmed though the ERP never received it."""

    def __init__(
        self,
        url: str,
        *,
        secret: bytes,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        headers = {"Content-Type": "application/json", "User-Agent": "einvoice"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def send(self, entry: Mapping[str, Any]) -> int:
        """POST the entry; return the ERP's 2xx status. Raises ErpDeliveryError (try again later)
        or ErpRefusedError (the ERP refuses it as it is)."""
        body = body_of(entry)
        headers = {IDEMPOTENCY_HEADER: str(entry["id"]), SIGNATURE_HEADER: signature(self.secret, body)}
        try:
            answer = self.client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ErpDeliveryError(f"the ERP did not answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ErpDeliveryError(f"the ERP could not be reached: {type(exc).__name__}: {exc}"[:500]) from None
        status = answer.status_code
        if 200 <= status < 300:
            return status
        said = answer.text[:300].strip()
        if status >= 500 or status in RETRY_STATUSES:
            raise ErpDeliveryError(f"the ERP answered {status}: {said}")
        raise ErpRefusedError(f"the ERP refused journal entry {entry['id']}: {status} {said}")

    def close(self) -> None:
        self.client.close()
