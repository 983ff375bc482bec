"""Authentication and request shape, with an in-memory runtime: no database, no broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from einvoice.receipts import ReceiptSigner, load_signer
from einvoice.settings import Settings

KEY = "eik_test-key"
LOOKUPS: list[str] = []


@dataclass
class FakeSupplier:
    id: str = "s1"
    name: str = "Supplier Oy"


class FakeUow:
    def __enter__(self) -> FakeUow:
        return self

    def __exit__(self, *args: object) -> None:
        return None


@dataclass
class FakeRuntime:
    settings: Settings
    calls: list[str] = field(default_factory=list)

    def uow_factory(self) -> FakeUow:
        return FakeUow()

    def check_ready(self) -> dict[str, str]:
        return {"database": "ok", "broker": "ok", "artefacts": "ok"}

    @property
    def signer(self) -> ReceiptSigner:
        return load_signer(self.settings)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    from einvoice.services import accounts, queries

    def authenticate(uow: Any, api_key: str) -> FakeSupplier | None:
        LOOKUPS.append(api_key)
        return FakeSupplier() if api_key == KEY else None

    monkeypatch.setattr(accounts, "authenticate_supplier", authenticate)
    monkeypatch.setattr(queries, "list_documents", lambda uow, **kw: [])
    runtime = FakeRuntime(Settings(data_dir=tmp_path, max_document_bytes=1000))
    return TestClient(create_app(runtime))  # type: ignore[arg-type]


def test_missing_key_is_401_with_challenge(client: TestClient) -> None:
    response = client.get("/v1/documents")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:einvoice:problem:unauthenticated"


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic dXNlcjpwYXNz", "Bearer", KEY])
def test_wrong_or_malformed_credentials_are_401(client: TestClient, header: str) -> None:
    assert client.get("/v1/documents", headers={"Authorization": header}).status_code == 401


def test_right_key_passes(client: TestClient) -> None:
    response = client.get("/v1/documents", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 0}


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/documents", content=b"hello", headers={"Authorization": f"Bearer {KEY}", "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["type"] == "urn:einvoice:problem:unsupported-media-type"


def test_declared_size_over_limit_is_413_before_reading(client: TestClient) -> None:
    response = client.post(
        "/v1/documents",
        content=b"<a/>" * 300,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/xml"},
    )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:einvoice:problem:too-large"


def test_authentication_comes_before_the_body(client: TestClient) -> None:
    response = client.post("/v1/documents", content=b"<a/>" * 300, headers={"Content-Type": "application/xml"})
    assert response.status_code == 401


def test_public_routes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    keys = client.get("/v1/receipt-keys").json()
    assert keys["current"] == keys["keys"][0]["kid"]
    assert keys["keys"][0]["crv"] == "Ed25519"


def test_not_ready_is_503_and_the_reason_goes_to_the_log_only(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    reason = "error: OperationalError: connection to server at 10.1.2.3, port 5432 failed"
    runtime.check_ready = lambda: {"database": reason, "broker": "ok"}
    with caplog.at_level("WARNING", logger="einvoice.api.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "broker": "ok"}
    assert "10.1.2.3" not in response.text
    assert reason in caplog.text


def test_openapi_describes_auth_bodies_and_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "einvoice"
    assert "SupplierApiKey" in spec["components"]["securitySchemes"]
    submit = spec["paths"]["/v1/documents"]["post"]
    assert {"application/xml", "multipart/form-data"} <= set(submit["requestBody"]["content"])
    assert {"200", "202", "400", "401", "403", "413", "415", "422"} <= set(submit["responses"])
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert {"200", "202", "204"} & set(operation["responses"]), (path, method)  # 204: DELETE /v1/webhook
    assert client.get("/docs").status_code == 200


def test_every_request_looks_its_key_up_so_a_revoked_key_is_refused_at_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from einvoice.services import accounts

    revoked: set[str] = set()

    def authenticate(uow: Any, api_key: str) -> FakeSupplier | None:
        LOOKUPS.append(api_key)
        return FakeSupplier() if api_key == KEY and api_key not in revoked else None

    monkeypatch.setattr(accounts, "authenticate_supplier", authenticate)
    LOOKUPS.clear()
    for _ in range(3):
        assert client.get("/v1/documents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/v1/documents", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert LOOKUPS.count(KEY) == 3
    assert LOOKUPS.count("nope") == 3
    revoked.add(KEY)  # as `einvoice suppliers deactivate` does, in another process
    assert client.get("/v1/documents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
