"""Every refused API request leaves one line in the server's log: status, problem type, reason and
the supplier when known; never the API key nor the document."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.e2e.documents import invoice
from tests.e2e.test_api_embedded import MAX_BYTES, XML, app, auth, client, keys, runtime  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

LOGGER = "einvoice.api.problems"
SECRET_MARKER = b"SECRET-CONTENT-0xC0FFEE"


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.getMessage().startswith("refused ")]


@pytest.mark.parametrize(
    ("case", "status", "problem", "with_supplier"),
    [
        ("no key", 401, "unauthenticated", False),
        ("wrong key", 401, "unauthenticated", False),
        ("not the seller", 403, "seller-mismatch", True),
        ("too large", 413, "too-large", True),
        ("pdf media type", 415, "unsupported-media-type", True),
        ("unknown buyer", 422, "unknown-buyer", True),
        ("bad filter", 422, "invalid-request", True),
    ],
)
def test_a_refused_request_is_logged_once_with_its_reason(
    client: TestClient,  # noqa: F811
    keys: dict[str, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
    problem: str,
    with_supplier: bool,
) -> None:
    document = invoice(SECRET_MARKER.decode() + case.replace(" ", "-"))
    requests: dict[str, Any] = {
        "no key": lambda: client.post("/v1/documents", content=document, headers=XML),
        "wrong key": lambda: client.post("/v1/documents", content=document, headers=auth("eik_wrong-key-1234", **XML)),
        "not the seller": lambda: client.post("/v1/documents", content=document, headers=auth(keys["other"], **XML)),
        "too large": lambda: client.post(
            "/v1/documents", content=document + b" " * MAX_BYTES, headers=auth(keys["seller"], **XML)
        ),
        "pdf media type": lambda: client.post(
            "/v1/documents", content=document, headers=auth(keys["seller"], **{"Content-Type": "application/pdf"})
        ),
        "unknown buyer": lambda: client.post(
            "/v1/documents",
            content=invoice(SECRET_MARKER.decode() + "-NOBUYER", buyer_endpoint="0216:003799999999"),
            headers=auth(keys["seller"], **XML),
        ),
        "bad filter": lambda: client.get("/v1/documents?limit=0", headers=auth(keys["seller"])),
    }
    with caplog.at_level(logging.INFO, logger=LOGGER):
        response = requests[case]()
    assert response.status_code == status, response.text
    refusals = _refusals(caplog)
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    record = refusals[0]
    line = record.getMessage()
    assert f"{status} {problem}" in line
    assert response.json()["detail"].split(";")[0][:40] in line
    assert record.__dict__["status"] == status
    assert record.__dict__["problem"] == problem
    if with_supplier:
        assert record.__dict__.get("supplier_id")
    else:
        assert "supplier_id" not in record.__dict__
    logged = line + repr(record.__dict__)
    for secret in (keys["seller"], keys["other"], "eik_wrong-key-1234", SECRET_MARKER.decode()):
        assert secret not in logged
