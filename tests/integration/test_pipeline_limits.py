"""One invalid document with thousands of lines, in production mode (PostgreSQL, RabbitMQ, an
``einvoice serve`` and an ``einvoice worker`` as subprocesses) with a 2-second lease and a
6-second validation limit: the API answers ``/healthz`` within a second throughout, also while it
validates the same document for ``POST /v1/validate``; the small invoices submitted behind it
finish; the large one is claimed once and ends ``rejected`` with ``VALIDATION-LIMIT``.

Before: the official stylesheets took about 60 s over it (their cost grows with the square of the
failing lines) while holding the interpreter of the process that ran them, and the sweeper sent it
again each time its lease ran out."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import accounts
from tests.conftest import REPO_ROOT
from tests.integration.pipeline_support import corpus_invoice, wait_for
from tests.integration.test_pipeline_production import (  # noqa: F401 (fixtures)
    Production,
    broker_url,
    database_url,
    production,
)
from tests.serving import served

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

LEASE_SECONDS = 2
TIMEOUT_SECONDS = 6
LINES = 4000


def large_invoice(number: str) -> bytes:
    """The base example with ``LINES`` empty invoice lines: each fails a dozen rules."""
    raw = corpus_invoice(number)
    return raw.replace(b"<cac:InvoiceLine>", b"<cac:InvoiceLine/>" * LINES + b"<cac:InvoiceLine>", 1)


@pytest.fixture
def api(production: Production) -> Iterator[str]:  # noqa: F811
    """``einvoice serve`` in production mode (relay and sweeper, no worker threads); its URL."""
    key_file = production.tmp / "receipt-key.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    env = {**os.environ, **production.env, "EINVOICE_VALIDATION_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    with (
        (production.tmp / "serve.log").open("ab") as log,
        served(
            env,
            args=["--workers-in-process", "0"],
            until="/readyz",
            timeout=90,
            cwd=REPO_ROOT,
            output=log,
            died=lambda: (production.tmp / "serve.log").read_text(),
        ) as url,
    ):
        yield url


class HealthProbe(threading.Thread):
    """Asks ``/healthz`` every 0.2 s until stopped; keeps the slowest answer (a timeout counts
    as its limit, 5 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.slowest = 0.0
        self.probes = 0

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    ok = client.get(self.url + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = time.monotonic() - started
                self.slowest = max(self.slowest, took if ok else 5.0)
                self.probes += 1
                self.stopped.wait(0.2)


def test_a_large_invalid_document_is_stopped_at_the_limit_while_everything_else_goes_on(
    production: Production,  # noqa: F811
    api: str,
) -> None:
    production.stuck_after_seconds = LEASE_SECONDS
    _, key = accounts.add_supplier(
        production.uow_factory(), name="Checker", endpoint="0088:1111", vat="GB0000001", unchecked=True
    )
    worker = production.start_worker("worker-1", EINVOICE_VALIDATION_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    # The worker compiles in its validation subprocesses before it takes messages.
    warm = production.submit(corpus_invoice("WARM-1"))
    wait_for(production.uow_factory, [warm], timeout=120)

    probe = HealthProbe(api)
    probe.start()
    checked: dict[str, httpx.Response] = {}

    def check_large() -> None:
        checked["response"] = httpx.post(
            api + "/v1/validate",
            content=large_invoice("CHECK-LARGE"),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/xml"},
            timeout=120,
        )

    checker = threading.Thread(target=check_large)
    try:
        started = time.monotonic()
        checker.start()
        large = production.submit(large_invoice("LARGE-1"))
        small = [production.submit(corpus_invoice(f"SMALL-{n}")) for n in range(5)]
        try:
            views = wait_for(production.uow_factory, [large, *small], timeout=120)
        except AssertionError:
            print(production.logs())
            raise
        checker.join(60)
    finally:
        probe.stopped.set()
        probe.join(10)
    took = time.monotonic() - started

    assert probe.probes > 10
    assert probe.slowest < 1.0, f"/healthz took {probe.slowest:.2f} s"
    assert all(views[d].status == S.APPROVED for d in small), {d: views[d].status for d in small}

    view = views[large]
    assert view.status == S.REJECTED, view.history
    assert [t.to_status for t in view.history].count(S.VALIDATING) == 1, view.history
    limit = [f for f in view.findings if f.rule == "VALIDATION-LIMIT"]
    assert len(limit) == 1, view.findings
    assert f"time limit of {TIMEOUT_SECONDS} s" in limit[0].message
    assert len(view.findings) < 200  # the layers that finished, capped per rule
    assert took < 60

    response = checked["response"]
    assert response.status_code == 200
    report = response.json()
    assert report["verdict"] == "invalid"
    assert report["findings"][-1]["rule"] == "VALIDATION-LIMIT"
    assert worker.stop() == 0, production.logs()
    assert "validation subprocess" in Path(worker.log_path).read_text()
