"""Suppliers' documents: submit, look up, list, reports.

Every route needs the supplier's API key, and a supplier sees only its own documents: another
supplier's id answers 404, exactly as an id that does not exist.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import HTMLResponse

from einvoice.api.deps import (
    XML_REQUEST_BODY,
    DocumentBytes,
    RuntimeDep,
    SupplierDep,
    in_database_thread,
)
from einvoice.api.models import (
    Decision,
    DocumentDetail,
    DocumentList,
    DocumentReport,
    DocumentSummary,
    FindingModel,
    ProblemDetails,
    Receipt,
    SubmitResponse,
    SupplierResponse,
    Transition,
)
from einvoice.api.reports import render_report_html, report_of
from einvoice.domain.states import DocumentStatus
from einvoice.errors import EInvoiceError
from einvoice.services.matching import HOLDS

if TYPE_CHECKING:
    from einvoice.services.queries import DocumentView


def problem_doc(description: str) -> dict[str, Any]:
    """OpenAPI entry of a problem-details response."""
    return {
        "model": ProblemDetails,
        "description": description,
        "content": {"application/problem+json": {}},
    }


COMMON_PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid request parameters, or a document that cannot be processed"),
    503: problem_doc("Database or broker busy or unreachable; retry after the Retry-After seconds"),
}

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=COMMON_PROBLEMS)


AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {401: problem_doc("Missing or wrong API key")}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("No such document, or it belongs to another supplier")}


def status_url(document_id: str) -> str:
    return f"/v1/documents/{document_id}"


def _summary_fields(view: DocumentView) -> dict[str, Any]:
    return {
        "id": str(view.id),
        "status": str(view.status),
        "document_type": view.document_type,
        "number": view.number,
        "issue_date": view.issue_date,
        "currency": view.currency,
        "payable_amount": None if view.payable_amount is None else str(view.payable_amount),
        "sha256": view.sha256,
        "received_at": view.received_at,
        "suspected_duplicate_of": view.suspected_duplicate_of,
        "refusal_reason": view.refusal_reason,
        "status_url": status_url(str(view.id)),
    }


def _transition(item: Any) -> Transition:
    return Transition(
        from_status=item.from_status, to_status=item.to_status, actor=item.actor, at=item.at, detail=item.detail
    )


def _match_result(value: Any) -> dict[str, Any] | None:
    """The match result as issue #11 shows it: without what the document holds on its commitment,
    the register's own bookkeeping (``services.matching.HOLDS``)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != HOLDS}
    if value is None:
        return value
    if isinstance(value, str):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {"result": parsed}
    if hasattr(value, "to_dict"):
        result: dict[str, Any] = value.to_dict()
        return result
    return {"result": str(value)}


def to_detail(view: DocumentView, decisions: list[dict[str, Any]] | None = None) -> DocumentDetail:
    url = status_url(str(view.id))
    return DocumentDetail(
        decisions=[Decision.model_validate(d) for d in decisions or []],
        **_summary_fields(view),
        history=[_transition(t) for t in view.history],
        findings=[FindingModel.model_validate(f.to_dict()) for f in view.findings],
        match_result=_match_result(view.match_result),
        journal_ref=view.journal_ref,
        report_urls={"json": url + "/report.json", "html": url + "/report.html"},
    )


def _wake_relay(runtime: Any) -> None:
    """Hand new documents to the queue now rather than at the relay's next poll (the runtime
    wakes it at most every ``bootstrap.RELAY_WAKE_SECONDS``)."""
    wake = getattr(runtime, "wake_relay", None)
    if wake is not None:
        wake()


@router.post(
    "",
    status_code=202,
    summary="Submit an invoice or credit note",
    description=(
        "The body is the UBL 2.1 document (`Content-Type: application/xml`), or a multipart upload "
        "with the document in the part `file`. The answer comes once the bytes are durably stored, "
        "before validation: poll `status_url` for the outcome. The `receipt` is an Ed25519 "
        "signature over the id, sha256, supplier and time of receipt; check it with "
        "`GET /v1/receipt-keys`.\n\n"
        "Sending the same bytes again (or the same `Idempotency-Key`) answers `200` with the first "
        "document. A different document with the same number (BT-1) in the same issue year is "
        "stored and marked `suspected_duplicate_of` for the accountants.\n\n"
        "The authenticated supplier must be the seller (BT-34 endpoint, BT-31 VAT id or BT-30 "
        "legal id registered for it), and the buyer endpoint (BT-49) a registered institution. "
        "Refused documents that were well-formed XML are still recorded: the problem body then "
        "carries `document_id`."
    ),
    openapi_extra=XML_REQUEST_BODY,
    responses={
        200: {"model": SubmitResponse, "description": "These bytes were received before: the first document"},
        202: {"model": SubmitResponse, "description": "Stored; validation follows"},
        400: problem_doc("Not well-formed XML, or a refused construct (DOCTYPE, entities)"),
        **AUTH_PROBLEMS,
        403: problem_doc("The supplier is not the seller of this document"),
        413: problem_doc("Larger than the configured limit"),
        415: problem_doc("Content-Type is neither XML nor a multipart upload"),
        422: problem_doc("Not a UBL Invoice or CreditNote, or the buyer is not a registered institution"),
    },
)
async def submit(
    request: Request,
    response: Response,
    supplier: SupplierDep,
    raw: DocumentBytes,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Any unique string; a retry with the same key returns the first answer",
        ),
    ] = None,
) -> SubmitResponse:
    from einvoice.services.intake import submit_document

    started = time.perf_counter()
    state = request.app.state
    runtime, signer, api_metrics = state.runtime, state.signer, state.api_metrics
    try:
        outcome = await in_database_thread(
            lambda: submit_document(
                runtime.uow_factory,
                supplier=supplier,
                raw=raw,
                idempotency_key=idempotency_key,
                settings=runtime.settings,
            )
        )
    except EInvoiceError as exc:
        api_metrics.observe_submission(type(exc).__name__, time.perf_counter() - started)
        raise
    view = outcome.document
    if outcome.created:
        _wake_relay(runtime)
    document_id = str(view.id)
    receipt = signer.sign(document_id, view.sha256, str(view.supplier_id), view.received_at)
    response.status_code = 202 if outcome.created else 200
    response.headers["Location"] = status_url(document_id)
    api_metrics.observe_submission("created" if outcome.created else "repeat", time.perf_counter() - started)
    return SubmitResponse(
        id=document_id,
        status=str(view.status),
        sha256=view.sha256,
        received_at=view.received_at,
        status_url=status_url(document_id),
        suspected_duplicate_of=view.suspected_duplicate_of,
        receipt=Receipt.model_validate(receipt),
    )


@router.get(
    "",
    summary="List the supplier's own documents",
    description="Newest first. Filter by `status` and by `since` (received at or after, ISO 8601).",
    responses={**AUTH_PROBLEMS, 422: problem_doc("Invalid filter")},
)
async def list_documents(
    runtime: RuntimeDep,
    supplier: SupplierDep,
    status: Annotated[DocumentStatus | None, Query(description="Only documents in this state")] = None,
    since: Annotated[datetime | None, Query(description="Received at or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DocumentList:
    from einvoice.services import queries

    def read() -> list[DocumentView]:
        with runtime.uow_factory() as uow:
            return queries.list_documents(
                uow, supplier_id=supplier.id, status=None if status is None else status.value, since=since, limit=limit
            )

    views = await in_database_thread(read)
    items = [DocumentSummary(**_summary_fields(v)) for v in views]
    return DocumentList(items=items, count=len(items))


def _read_own_document(runtime: Any, supplier: Any, document_id: str) -> DocumentView:
    from einvoice.services import queries

    with runtime.uow_factory() as uow:
        return queries.get_document(uow, document_id, supplier_id=supplier.id)


async def _own_document(runtime: Any, supplier: Any, document_id: str) -> DocumentView:
    return await in_database_thread(_read_own_document, runtime, supplier, document_id)


def _read_detail(runtime: Any, supplier: Any, document_id: str) -> DocumentDetail:
    from einvoice.services import review

    view = _read_own_document(runtime, supplier, document_id)
    return to_detail(view, [d.to_dict() for d in review.decisions_of(runtime.uow_factory(), document_id)])


@router.get(
    "/{document_id}",
    summary="Status, history, findings, match result, decisions and journal reference of one document",
    description=(
        "`decisions` lists what the buyer's accountants decided, oldest first: `approve`, `reject` (with "
        "an Invoice Response status reason code in `reason` and words in `comment`) and `query` (the "
        "document is `under_query`; `comment` says what information is asked for: answer with a new or "
        "corrected document). A document above the buyer's four-eyes limit is `awaiting_second_approval` "
        "after the first approval."
    ),
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def get_document(runtime: RuntimeDep, supplier: SupplierDep, document_id: str) -> DocumentDetail:
    return await in_database_thread(_read_detail, runtime, supplier, document_id)


@router.get(
    "/{document_id}/report.json",
    summary="Validation report of one document (JSON)",
    description=(
        "The findings the pipeline recorded, with the rule set validation ran: `rules`, "
        "`rules_version` and `artefacts` (set, version, path and sha256 of every file), null and "
        "empty before validation and for documents refused at intake."
    ),
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def report_json(runtime: RuntimeDep, supplier: SupplierDep, document_id: str) -> DocumentReport:
    return DocumentReport.model_validate(report_of(await _own_document(runtime, supplier, document_id)))


@router.get(
    "/{document_id}/report.html",
    summary="Validation report of one document (HTML, for people)",
    response_class=HTMLResponse,
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def report_html(runtime: RuntimeDep, supplier: SupplierDep, document_id: str) -> HTMLResponse:
    def render() -> str:  # in the thread too: a long report takes a while to render
        return render_report_html(_read_own_document(runtime, supplier, document_id))

    return HTMLResponse(await in_database_thread(render))


def _read_responses(runtime: Any, supplier: Any, document_id: str) -> list[SupplierResponse]:
    from einvoice.services import responses

    views = responses.list_responses(runtime.uow_factory(), document_id, supplier_id=supplier.id)
    return [SupplierResponse(**view.to_dict()) for view in views]


@router.get(
    "/{document_id}/responses",
    summary="The responses the buyer gave the supplier about one document",
    description=(
        "Oldest first. `type` is `invoice-response` (Peppol Invoice Response, BIS 63, T111: `code` IP when "
        "the document waits for a person, UQ under query, RE rejected, AP accepted, with the OPStatusReason "
        "`reason`, the OPStatusAction `action` and words in `note` where there are any) or "
        "`message-level-response` (Peppol MLR, BIS 36, T71: `code` RE, the document was rejected by "
        "validation; its XML has one line response per fatal finding). Each is fetched as UBL "
        "ApplicationResponse XML at its `url`."
    ),
    responses={**AUTH_PROBLEMS, **NOT_FOUND},
)
async def list_responses(runtime: RuntimeDep, supplier: SupplierDep, document_id: str) -> list[SupplierResponse]:
    return await in_database_thread(_read_responses, runtime, supplier, document_id)


def _read_response_xml(runtime: Any, supplier: Any, document_id: str, response_id: str) -> bytes:
    from einvoice.errors import NotFoundError
    from einvoice.services import responses

    number = response_id.removesuffix(".xml")
    if not number.isdigit() or len(number) > 18:
        raise NotFoundError(f"no response {response_id} of document {document_id}")
    return responses.response_xml(runtime.uow_factory(), document_id, int(number), supplier_id=supplier.id)


@router.get(
    "/{document_id}/responses/{response_id}",
    summary="One response to the supplier, as UBL ApplicationResponse XML",
    description=(
        "`response_id` is the `id` of the list, with or without `.xml` (the list's `url`). An Invoice "
        "Response has CustomizationID `urn:fdc:peppol.eu:poacc:trns:invoice_response:3`, a Message Level "
        "Response `urn:fdc:peppol.eu:poacc:trns:mlr:3`; both pass the UBL 2.1 ApplicationResponse XSD and "
        "the official T111 or T71 rules."
    ),
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "The UBL ApplicationResponse"},
        **AUTH_PROBLEMS,
        404: problem_doc("No such document or response, or it belongs to another supplier"),
    },
)
async def response_xml(runtime: RuntimeDep, supplier: SupplierDep, document_id: str, response_id: str) -> Response:
    xml = await in_database_thread(_read_response_xml, runtime, supplier, document_id, response_id)
    return Response(xml, media_type="application/xml")
