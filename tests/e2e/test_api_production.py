"""Production mode over real HTTP: ``einvoice serve`` and ``einvoice worker`` as subprocesses against
a fresh PostgreSQL database and RabbitMQ (its own virtual host when the server is local)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from einvoice.receipts import verify_receipt
from tests.e2e.documents import BUYER_ENDPOINT, SELLER_ENDPOINT, SELLER_VAT, invoice, register_contracts
from tests.serving import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

BEFORE_VALIDATION = {"received", "validating"}


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of its own, dropped afterwards."""
    name = f"einvoice_api_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def broker_url(rabbitmq_url: str) -> Iterator[str]:
    """A virtual host of its own when RabbitMQ is local (other test runs share the server)."""
    parsed = urlparse(rabbitmq_url)
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or parsed.hostname not in ("127.0.0.1", "localhost"):
        yield rabbitmq_url
        return
    vhost = f"einvoice-api-e2e-{uuid.uuid4().hex[:10]}"
    user = parsed.username or "guest"
    created = subprocess.run([ctl, "add_vhost", vhost], capture_output=True, check=False).returncode == 0
    if not created:
        yield rabbitmq_url
        return
    subprocess.run([ctl, "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], capture_output=True, check=True)
    try:
        yield urlunparse(parsed._replace(path="/" + quote(vhost, safe="")))
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, check=False)


@dataclass
class Deployment:
    url: str
    api_key: str
    processes: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def deployment(database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from einvoice.services.accounts import add_institution, add_supplier
    from einvoice.store import make_engine, migrate, uow_factory_for

    home: Path = tmp_path_factory.mktemp("production")
    key_file = home / "receipt-key.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    migrate(database_url)
    engine = make_engine(database_url)
    uow_factory = uow_factory_for(engine)
    # made-up identifiers (tests/e2e/documents.py)
    add_institution(uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    _, api_key = add_supplier(
        uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contracts(uow_factory)  # the contract the invoices name (BT-10)
    engine.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_") or k == "EINVOICE_SHARED_DIR"}
    env |= {
        "EINVOICE_MODE": "production",
        "EINVOICE_DATABASE_URL": database_url,
        "EINVOICE_BROKER_URL": broker_url,
        "EINVOICE_SIGNING_KEY_FILE": str(key_file),
        "EINVOICE_DATA_DIR": str(home),
    }
    port = free_port()
    command = [sys.executable, "-m", "einvoice"]
    processes = [
        subprocess.Popen([*command, "serve", "--port", str(port), "--workers-in-process", "0"], env=env),
        subprocess.Popen([*command, "worker", "--threads", "2"], env=env),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert all(p.poll() is None for p in processes), "serve or worker exited while starting"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready within 90 s"
            time.sleep(0.3)
        yield Deployment(url, api_key, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_documents_end_to_end_over_http(deployment: Deployment) -> None:
    headers = {"Authorization": f"Bearer {deployment.api_key}", "Content-Type": "application/xml"}
    with httpx.Client(base_url=deployment.url, headers=headers, timeout=30) as client:
        ready = client.get("/readyz").json()
        assert {"database", "broker", "artefacts"} <= set(ready["checks"])
        assert all(value == "ok" for value in ready["checks"].values()), ready

        # issued 8 days apart: one total within 7 days would be a suspected duplicate
        documents = [invoice(f"PROD-{i}", issue_date=date(2026, 9, 1) + timedelta(days=8 * i)) for i in range(5)]
        answers = [client.post("/v1/documents", content=doc) for doc in documents]
        assert [a.status_code for a in answers] == [202] * 5, [a.text for a in answers]
        ids = [a.json()["id"] for a in answers]

        again = client.post("/v1/documents", content=documents[0])
        assert again.status_code == 200
        assert again.json()["id"] == ids[0]

        keys = client.get("/v1/receipt-keys").json()["keys"]
        assert all(verify_receipt(a.json()["receipt"], keys) for a in answers)

        deadline = time.monotonic() + 90
        final: dict[str, dict[str, Any]] = {}
        while len(final) < len(ids):
            for document_id in ids:
                if document_id not in final:
                    body = client.get(f"/v1/documents/{document_id}").json()
                    if body["status"] not in BEFORE_VALIDATION:
                        final[document_id] = body
            assert time.monotonic() < deadline, f"not validated in time: {set(ids) - set(final)}"
            time.sleep(0.2)
        for body in final.values():
            assert body["status"] != "rejected", body["findings"]
            assert any(t["to_status"] == "validated" for t in body["history"])

        listed = client.get("/v1/documents", params={"limit": 100}).json()
        assert set(ids) <= {d["id"] for d in listed["items"]}
        metrics = client.get("/metrics").text
        assert "einvoice_documents{" in metrics
        assert "einvoice_submission_seconds_count" in metrics

    for process in deployment.processes:
        assert process.poll() is None, "a process died during the run"
