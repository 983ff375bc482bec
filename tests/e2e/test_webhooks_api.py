"""``/v1/webhook`` over HTTP, embedded mode: the supplier registers a URL, gets the secret once, and
each response its documents get is POSTed there, signed, by the in-process worker queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from einvoice.api import create_app
from tests.e2e.documents import BUYER_ENDPOINT, SELLER_ENDPOINT, SELLER_VAT, invoice
from tests.e2e.embedded import embedded_runtime
from tests.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with embedded_runtime(tmp_path_factory, "webhooks", webhook_allow_http_localhost=True) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from einvoice.services.accounts import add_institution, add_supplier

    add_institution(runtime.uow_factory(), name="Ministry of Examples", endpoint=BUYER_ENDPOINT, unchecked=True)
    _, key = add_supplier(
        runtime.uow_factory(), name="Supplier Oy", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    with TestClient(create_app(runtime)) as client:
        yield client, {"Authorization": f"Bearer {key}"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as served:
        yield served


def test_without_a_key_401_and_only_https_urls_are_taken(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    assert client.put("/v1/webhook", json={"url": "https://example.org/hook"}).status_code == 401
    for url in ("http://example.org/hook", "ftp://example.org/", "not a url", "https://user:pw@example.org/"):
        refused = client.put("/v1/webhook", json={"url": url}, headers=auth)
        assert refused.status_code == 422, url
        assert refused.json()["type"].endswith("invalid-webhook")


def test_each_response_is_posted_signed_and_the_secret_is_shown_once(
    api: tuple[TestClient, dict[str, str]], receiver: Receiver
) -> None:
    client, auth = api
    put = client.put("/v1/webhook", json={"url": receiver.url}, headers=auth)
    assert put.status_code == 200, put.text
    secret = put.json()["secret"]
    shown = client.get("/v1/webhook", headers=auth)
    assert shown.status_code == 200
    assert shown.json()["url"] == receiver.url
    assert shown.json()["recent_failures"] == []
    assert "secret" not in shown.json()
    assert secret not in shown.text

    answer = client.post(
        "/v1/documents", content=invoice("HOOK-E2E-1"), headers={**auth, "Content-Type": "application/xml"}
    )
    assert answer.status_code == 202, answer.text
    document_id = answer.json()["id"]
    deadline = time.monotonic() + 60
    while True:  # the document settles, and every response it got reaches the receiver
        listed = client.get(f"/v1/documents/{document_id}/responses", headers=auth).json()
        got = [json.loads(body) for _, body in receiver.got]
        if len(listed) > 1 and len(got) == len(listed):
            break
        assert time.monotonic() < deadline, f"responses {listed}, delivered {got}"
        time.sleep(0.2)
    # deliveries run concurrently: no order is promised, a receiver orders them by id
    got.sort(key=lambda delivered: delivered["id"])
    assert got == [{"document_id": document_id, **response} for response in listed]
    assert got[0]["code"] == "AB"
    assert receiver.signed_with(secret)
    assert len({headers["X-Einvoice-Delivery"] for headers, _ in receiver.got}) == len(got)

    rotated = client.put("/v1/webhook", json={"url": receiver.url}, headers=auth).json()
    assert rotated["secret"] != secret
    assert rotated["rotated_at"] is not None
    assert client.delete("/v1/webhook", headers=auth).status_code == 204
    assert client.get("/v1/webhook", headers=auth).status_code == 404
    assert client.delete("/v1/webhook", headers=auth).status_code == 404
