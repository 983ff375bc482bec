"""Errors as RFC 9457 problem details (``application/problem+json``): the one place that picks status codes.

The engine raises errors from the ``EInvoiceError`` tree; this module maps each class to a status
and a problem type, walking the class's MRO so that a subclass added later inherits its parent's
answer. Choices worth explaining:

- 400: bytes that are not well-formed XML, and XML that uses refused constructs (DOCTYPE,
  entities, XInclude, too deep). Both are faults of the request syntax that no retry fixes.
- 413: a document larger than ``max_document_bytes`` (checked on Content-Length and while reading).
- 415: the request's ``Content-Type`` is not XML (or a multipart upload). 415 is about the media
  type of the request, so it is used only for that.
- 422: well-formed XML with an accepted media type that is not a document the engine processes
  (not a UBL Invoice or CreditNote), an unknown buyer, and request parameters that fail validation.
- 409: a commitment's number (or a receipt's reference) registered before with other content, or
  a change that would take away what invoices or receipts hold.
- 401: missing or wrong API key; 403: authenticated, but not the seller of the document; 404: not
  found or not visible to the caller (the two are not told apart, so ids cannot be probed).
- 409: a decision on a document whose state no longer allows it (``ConflictError``: the document
  moved on, say someone else already sent it back). An Idempotency-Key reused for other bytes is
  a 422, as it always was: the request, not the document's state, is what cannot be processed.
- 503: a validation artefact is missing or a transient database/broker fault; retrying may help.

The body always has ``type``, ``title``, ``status`` and ``detail``; ``findings`` when the error
carries any, ``document_id`` and ``status_url`` when the error names a document (a refused one
that was still recorded, one whose state refused a decision).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from einvoice import errors
from einvoice.domain.findings import (
    FORMER_RULES,
    RULE_NOT_WELL_FORMED,
    RULE_SELLER_MISMATCH,
    RULE_TOO_LARGE,
    RULE_UNKNOWN_BUYER,
    RULE_UNSAFE,
    RULE_UNSUPPORTED,
    Finding,
    Layer,
    Severity,
)

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:einvoice:problem:"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    slug: str
    title: str


# Keyed by class, looked up along the raised class's MRO: the nearest class in the table answers,
# so a subclass added later answers as its parent does. Never by name: a class that merely shares
# a name with one of these is not one of them.
_BY_CLASS: dict[type[errors.EInvoiceError], ProblemKind] = {
    errors.NotWellFormedError: ProblemKind(400, "not-well-formed", "Not well-formed XML"),
    errors.UnsafeXmlError: ProblemKind(400, "unsafe-xml", "Refused XML construct"),
    errors.DocumentTooLargeError: ProblemKind(413, "too-large", "Document too large"),
    errors.UnsupportedDocumentError: ProblemKind(422, "unsupported-document", "Unsupported document type"),
    errors.UnknownBuyerError: ProblemKind(422, "unknown-buyer", "Unknown buyer"),
    errors.IdempotencyConflictError: ProblemKind(
        422, "idempotency-key-reused", "Idempotency-Key already used for other bytes"
    ),
    errors.IntakeError: ProblemKind(422, "refused", "Document refused"),
    errors.SellerMismatchError: ProblemKind(403, "seller-mismatch", "Not the seller of this document"),
    errors.InvalidCommitmentError: ProblemKind(422, "invalid-commitment", "Invalid commitment"),
    errors.CommitmentConflictError: ProblemKind(409, "commitment-conflict", "Commitment registered with other content"),
    errors.PostingSetupError: ProblemKind(422, "posting-setup", "Chart of accounts or posting profile refused"),
    errors.PaymentError: ProblemKind(422, "payment-refused", "Payment not recorded"),
    errors.FeedCursorError: ProblemKind(422, "invalid-cursor", "Not a cursor of this feed"),
    errors.WebhookError: ProblemKind(422, "invalid-webhook", "Webhook URL refused"),
    errors.AckBatchError: ProblemKind(422, "invalid-ack-batch", "Not a batch of entry ids to acknowledge"),
    errors.AuthorizationError: ProblemKind(403, "forbidden", "Forbidden"),
    errors.AuthenticationError: ProblemKind(401, "unauthenticated", "Missing or wrong API key"),
    errors.NotFoundError: ProblemKind(404, "not-found", "Not found"),
    errors.ConflictError: ProblemKind(409, "conflict", "Conflict with the document's state"),
    errors.ArtefactError: ProblemKind(503, "artefacts-unavailable", "Validation artefacts unavailable"),
    errors.ValidationEngineError: ProblemKind(503, "validation-unavailable", "Validation could not run"),
    errors.TransientError: ProblemKind(503, "temporarily-unavailable", "Temporarily unavailable"),
    errors.ConfigurationError: ProblemKind(500, "configuration", "Server misconfigured"),
    errors.EInvoiceError: ProblemKind(500, "internal", "Internal error"),
}

# Titles of plain HTTP statuses raised by FastAPI/Starlette themselves or by our routers.
_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Missing or wrong API key"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("too-large", "Document too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    503: ("unavailable", "Service unavailable"),
}

# Intake errors without findings of their own get one, so a supplier sees a rule id and a line:
# the ids ``einvoice validate`` and ``POST /v1/validate`` give the same problem. By class, as above.
_INTAKE_RULES: dict[type[errors.EInvoiceError], str] = {
    errors.NotWellFormedError: RULE_NOT_WELL_FORMED,
    errors.DocumentTooLargeError: RULE_TOO_LARGE,
    errors.UnsafeXmlError: RULE_UNSAFE,
    errors.UnsupportedDocumentError: RULE_UNSUPPORTED,
    errors.UnknownBuyerError: RULE_UNKNOWN_BUYER,
    errors.SellerMismatchError: RULE_SELLER_MISMATCH,
}

T = TypeVar("T")


def _nearest(table: Mapping[type[errors.EInvoiceError], T], exc: BaseException) -> T | None:
    """The entry of the nearest class of ``exc``'s MRO that ``table`` holds, or None."""
    for cls in type(exc).__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    return None


def problem_kind(exc: BaseException) -> ProblemKind:
    """Return the status, type slug and title for an engine error (500 for anything unknown)."""
    return _nearest(_BY_CLASS, exc) or _BY_CLASS[errors.EInvoiceError]


def document_id_of(exc: BaseException) -> str | None:
    """The document an error is about, when it names one (a refused document that was recorded,
    a document whose state refused a decision)."""
    if isinstance(exc, errors.IntakeError | errors.ConflictError | errors.SellerMismatchError):
        return exc.document_id
    return None


def _findings_of(exc: BaseException) -> list[dict[str, Any]]:
    found: tuple[Finding, ...] = exc.findings if isinstance(exc, errors.IntakeError) else ()
    if found:
        return [_with_former_rule(f.to_dict()) for f in found]
    rule = _nearest(_INTAKE_RULES, exc)
    if rule is None:
        return []
    line = exc.line if isinstance(exc, errors.IntakeError) else None
    finding = Finding(
        rule=rule,
        severity=Severity.FATAL,
        layer=Layer.INTAKE,
        message=str(exc) or type(exc).__name__,
        line=line,
    )
    return [_with_former_rule(finding.to_dict())]


def _with_former_rule(item: dict[str, Any]) -> dict[str, Any]:
    """The finding with ``former_rule``, the id intake's problems gave it before (deprecated:
    for one release, so that clients matching on the old ids can move to the new ones)."""
    former = FORMER_RULES.get(str(item.get("rule")))
    return {**item, "former_rule": former} if former and item.get("layer") == Layer.INTAKE.value else item


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    findings: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return a problem-details body."""
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if findings:
        body["findings"] = findings
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


# Refusals worth a line in the server's log: each says why a supplier's request did not go through.
# 404 is left out (a browser's /favicon.ico, a poll for a gone id), 5xx are logged as errors.
LOGGED_REFUSALS = frozenset({400, 401, 403, 409, 413, 415, 422})
_LOGGED_DETAIL = 300  # characters: enough for the reason, never a document


def log_refusal(request: Request, body: dict[str, Any]) -> None:
    """One line for a refused request: method, path, status, problem type, the reason, the supplier
    when it was authenticated. Never the API key (it is in no detail) nor the document."""
    status = int(body["status"])
    if status not in LOGGED_REFUSALS:
        return
    slug = str(body["type"]).removeprefix(TYPE_PREFIX)
    detail = " ".join(str(body.get("detail", "")).split())
    if len(detail) > _LOGGED_DETAIL:
        detail = detail[: _LOGGED_DETAIL - 1] + "…"
    supplier_id = getattr(request.state, "supplier_id", None)
    extra: dict[str, Any] = {"status": status, "problem": slug}
    if supplier_id:
        extra["supplier_id"] = str(supplier_id)
    institution_id = getattr(request.state, "institution_id", None)
    if institution_id:
        extra["institution_id"] = str(institution_id)
    if body.get("document_id"):
        extra["document_id"] = body["document_id"]
    log.info("refused %s %s: %s %s: %s", request.method, request.url.path, status, slug, detail, extra=extra)


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=int(body["status"]), media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_for_error(exc: errors.EInvoiceError, *, instance: str | None = None) -> JSONResponse:
    """Return the problem response for an engine error."""
    kind = problem_kind(exc)
    document_id = document_id_of(exc)
    detail = str(exc) or kind.title
    if kind.status >= 500:
        if kind.status == 500:
            detail = "the server could not handle the request; the operators have been told"
        log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=kind.status == 500)
    body = problem_body(
        kind.status,
        kind.slug,
        kind.title,
        detail,
        instance=instance,
        findings=_findings_of(exc) if kind.status < 500 else None,
        document_id=str(document_id) if document_id else None,
        status_url=f"/v1/documents/{document_id}" if document_id else None,
    )
    field = getattr(exc, "field", None)
    if isinstance(field, str) and kind.status < 500:  # as request validation names its fields
        body["errors"] = [{"location": field, "message": str(getattr(exc, "message", exc))}]
    headers = {"WWW-Authenticate": 'Bearer realm="einvoice"'} if kind.status == 401 else None
    if kind.status == 503:
        headers = {"Retry-After": "5"}
    return problem_response(body, headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem details."""

    async def on_engine_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.EInvoiceError)
        response = problem_for_error(exc, instance=request.url.path)
        if response.status_code < 500:
            log_refusal(request, json.loads(bytes(response.body)))
        return response

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _HTTP_TITLES.get(exc.status_code, ("http-" + str(exc.status_code), "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="einvoice"')
        body = problem_body(exc.status_code, slug, title, detail, instance=request.url.path)
        log_refusal(request, body)
        return problem_response(body, headers or None)

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        body = problem_body(
            422,
            "invalid-request",
            "Invalid request",
            "; ".join(f"{p['location']}: {p['message']}" for p in problems) or "invalid request",
            instance=request.url.path,
            errors=problems,
        )
        log_refusal(request, body)
        return problem_response(body)

    async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A full connection pool or a database that does not answer: worth a retry later.
        log.warning("database unavailable for %s: %s: %s", request.url.path, type(exc).__name__, exc)
        body = problem_body(
            503,
            "temporarily-unavailable",
            "Temporarily unavailable",
            "the database is busy or unreachable; retry shortly",
            instance=request.url.path,
        )
        return problem_response(body, {"Retry-After": "5"})

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        body = problem_body(
            500,
            "internal",
            "Internal error",
            "the server could not handle the request; the operators have been told",
            instance=request.url.path,
        )
        return problem_response(body)

    from sqlalchemy.exc import TimeoutError as PoolTimeoutError  # the pool's: raised before any statement

    app.add_exception_handler(errors.EInvoiceError, on_engine_error)
    app.add_exception_handler(PoolTimeoutError, on_database_unavailable)
    app.add_exception_handler(errors.DatabaseUnavailableError, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
