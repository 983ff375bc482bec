"""Problem details: every engine error maps to a status, a type and a JSON body; HTTP errors too."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from einvoice import errors
from einvoice.api import problems
from einvoice.domain.findings import Finding, Layer, Severity

UnknownBuyerError = errors.UnknownBuyerError
SellerMismatchError = errors.SellerMismatchError


class NewIntakeError(errors.UnsupportedDocumentError):
    """A subclass added later inherits its parent's answer."""


class NewSellerError(errors.SellerMismatchError):
    """Another subclass added later, two levels below the class the table names."""


class NotTheSameSellerMismatchError(errors.IntakeError):
    """Shares a name with a mapped class but not its place in the tree."""


NotTheSameSellerMismatchError.__name__ = NotTheSameSellerMismatchError.__qualname__ = "SellerMismatchError"


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (errors.NotWellFormedError("x"), 400, "not-well-formed"),
        (errors.UnsafeXmlError("DOCTYPE"), 400, "unsafe-xml"),
        (errors.DocumentTooLargeError("big"), 413, "too-large"),
        (errors.UnsupportedDocumentError("Order"), 422, "unsupported-document"),
        (NewIntakeError("x"), 422, "unsupported-document"),
        (UnknownBuyerError("0037:1"), 422, "unknown-buyer"),
        (errors.IntakeError("x"), 422, "refused"),
        (SellerMismatchError("not you"), 403, "seller-mismatch"),
        (errors.AuthorizationError("no"), 403, "forbidden"),
        (errors.AuthenticationError("no key"), 401, "unauthenticated"),
        (errors.NotFoundError("gone"), 404, "not-found"),
        (errors.ArtefactMissingError("xsd"), 503, "artefacts-unavailable"),
        (errors.TransientError("db"), 503, "temporarily-unavailable"),
        (errors.ConfigurationError("key"), 500, "configuration"),
        (errors.PermanentError("x"), 500, "internal"),
        (errors.ConflictError("moved on", document_id="d1", status="validated"), 409, "conflict"),
        (NewSellerError("not you either"), 403, "seller-mismatch"),
        (errors.RuleSetError("no set in force"), 503, "artefacts-unavailable"),
        (errors.UblParseError("bad amount"), 500, "internal"),
    ],
)
def test_problem_kind(exc: errors.EInvoiceError, status: int, slug: str) -> None:
    kind = problems.problem_kind(exc)
    assert (kind.status, kind.slug) == (status, slug)


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/malformed")
    def malformed() -> None:
        raise errors.NotWellFormedError("mismatched tag at line 3")

    @app.get("/recorded")
    def recorded() -> None:
        raise UnknownBuyerError(
            "buyer 0037:999 is not a registered institution",
            document_id="abc",
            findings=(Finding("INTAKE-UNKNOWN-BUYER", Severity.FATAL, Layer.INTAKE, "unknown buyer", "/Invoice"),),
        )

    @app.post("/retry")
    def retry() -> None:
        raise errors.ConflictError("document d1 is validated, not dead", document_id="d1", status="validated")

    @app.get("/secret")
    def secret() -> None:
        raise errors.ConfigurationError("password=hunter2")

    @app.get("/pool")
    def pool() -> None:
        from sqlalchemy.exc import TimeoutError as PoolTimeoutError

        raise PoolTimeoutError("QueuePool limit of size 10 overflow 20 reached")

    @app.get("/bug")
    def bug() -> None:
        raise KeyError("oops")

    @app.get("/http")
    def http() -> None:
        raise HTTPException(415, "send XML")

    @app.get("/needs-int")
    def needs_int(n: int) -> int:
        return n

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


def test_problem_body_with_synthesised_finding(client: TestClient) -> None:
    response = client.get("/malformed")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:einvoice:problem:not-well-formed"
    assert body["title"] == "Not well-formed XML"
    assert body["status"] == 400
    assert body["detail"] == "mismatched tag at line 3"
    assert body["instance"] == "/malformed"
    assert body["findings"][0]["rule"] == "XML-WELL-FORMED"
    assert body["findings"][0]["former_rule"] == "INTAKE-NOT-WELL-FORMED"  # for one release
    assert body["findings"][0]["severity"] == "fatal"


def test_recorded_document_and_its_findings_are_reported(client: TestClient) -> None:
    body = client.get("/recorded").json()
    assert body["status"] == 422
    assert body["document_id"] == "abc"
    assert body["status_url"] == "/v1/documents/abc"
    assert [f["rule"] for f in body["findings"]] == ["INTAKE-UNKNOWN-BUYER"]


def test_internal_errors_do_not_leak_details(client: TestClient) -> None:
    response = client.get("/secret")
    assert response.status_code == 500
    assert "hunter2" not in response.text
    assert "findings" not in response.json()


def test_http_exceptions_and_request_validation_are_problems(client: TestClient) -> None:
    response = client.get("/http")
    assert response.status_code == 415
    assert response.json()["type"] == "urn:einvoice:problem:unsupported-media-type"
    assert response.json()["detail"] == "send XML"
    response = client.get("/needs-int", params={"n": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["location"] == "query.n"
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["type"] == "urn:einvoice:problem:not-found"


def test_database_pool_exhaustion_is_503_and_bugs_are_500_problems(client: TestClient) -> None:
    response = client.get("/pool")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "urn:einvoice:problem:temporarily-unavailable"
    response = client.get("/bug")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "oops" not in response.text


def test_problems_are_chosen_by_class_never_by_name() -> None:
    """A class named like a mapped one answers as its own place in the tree says (here: a refused
    document, 422), not as the class it shares a name with (403)."""
    exc = NotTheSameSellerMismatchError("looks like a seller mismatch")
    assert type(exc).__name__ == "SellerMismatchError"
    kind = problems.problem_kind(exc)
    assert (kind.status, kind.slug) == (422, "refused")


def test_every_error_class_of_the_package_has_a_problem() -> None:
    """Each class of ``einvoice.errors`` finds a status along its MRO; the root is the only 500 by
    default, and no class outside the tree is in the table."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.EInvoiceError)]
    assert len(classes) >= 30
    for cls in classes:
        assert problems.problem_kind(cls("x")).status in (400, 401, 403, 404, 409, 413, 422, 500, 503)
    assert all(issubclass(cls, errors.EInvoiceError) for cls in problems._BY_CLASS)


def test_conflict_is_409_naming_the_document(client: TestClient) -> None:
    response = client.post("/retry")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:einvoice:problem:conflict"
    assert body["title"] == "Conflict with the document's state"
    assert body["detail"] == "document d1 is validated, not dead"
    assert body["document_id"] == "d1"
    assert body["status_url"] == "/v1/documents/d1"
    assert "findings" not in body
