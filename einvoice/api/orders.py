"""Peppol Orders and Despatch Advices into the commitments register.

``POST /v1/orders`` (institution key): a Peppol BIS Order (T01) becomes an order commitment.
``POST /v1/despatch-advices`` (supplier key): a Peppol Despatch Advice (T16) is stored against the
order's lines as expected deliveries; the institution reads it (``GET``) and confirms it, whole or
with the quantities that arrived (``POST /v1/despatch-advices/{id}/confirm``), which records the
receipt. Both documents are validated first, against the UBL 2.1 XSD of their type and the Peppol
rules (``PEPPOLBIS-T01.xslt``, ``PEPPOLBIS-T16.xslt``), in the validation subprocess.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from einvoice.api.commitments import CommitmentOut, _location, _out, match_late
from einvoice.api.deps import DocumentBytes, InstitutionDep, RuntimeDep, SupplierDep, in_database_thread
from einvoice.api.documents import problem_doc
from einvoice.domain.commitments import DespatchAdvice, DespatchStatus
from einvoice.errors import IntakeError, UnsupportedDocumentError, ValidationEngineError
from einvoice.services.orders import ConfirmationInput

ORDER_RULES = "peppol-order"
DESPATCH_ADVICE_RULES = "peppol-despatch-advice"

PROBLEMS: dict[int | str, dict[str, Any]] = {
    413: problem_doc("Larger than the configured limit"),
    415: problem_doc("Content-Type is neither XML nor a multipart upload"),
    503: problem_doc("Database busy or unreachable, or validation could not run; retry after Retry-After"),
}


def _xml_body(what: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": what,
            "content": {
                "application/xml": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    }


async def _validated(request: Request, raw: bytes, *, document_type: str, rules: str, name: str) -> None:
    """Validate ``raw`` as ``document_type`` under the rule set ``rules``; raise
    UnsupportedDocumentError (another document), IntakeError with the fatal findings (invalid),
    ValidationEngineError (validation could not run)."""
    pool = request.app.state.runtime.validation_pool
    report = await run_in_threadpool(pool.validate, raw)
    if report.verdict == "error":
        raise ValidationEngineError(f"the {name} could not be validated; retry later")
    if report.document_type != document_type or report.rules != rules:
        found = report.document_type or "no UBL document"
        raise UnsupportedDocumentError(
            f"send a {name} (UBL {document_type} with its Peppol CustomizationID), not {found}",
            findings=report.fatal,
        )
    if not report.valid:
        raise IntakeError(f"the {name} is not valid ({report.rules_label})", findings=report.fatal)


orders = APIRouter(prefix="/v1/orders", tags=["commitments"], responses=PROBLEMS)


@orders.post(
    "",
    status_code=201,
    summary="Register an order commitment from a Peppol BIS Order (T01)",
    description=(
        "The Order (UBL 2.1 Order, `urn:fdc:peppol.eu:poacc:trns:order:3`) is validated against the UBL Order "
        "XSD and `PEPPOLBIS-T01.xslt`, then registered as an order commitment of the key's institution: the "
        "number is the Order's `cbc:ID`, the lines its `cac:OrderLine/cac:LineItem` (quantity and unit, the "
        "net price per unit: `cbc:PriceAmount` over `cbc:BaseQuantity`, item name and ids, VAT category and "
        "rate, `cbc:AccountingCost` as the account), the amount its `cac:AnticipatedMonetaryTotal/"
        "cbc:PayableAmount` (VAT included), the end of validity its `cac:ValidityPeriod/cbc:EndDate`, the "
        "supplier the registered one with the `cac:SellerSupplierParty` endpoint; tolerances are the "
        "institution's defaults. The Order's buyer (`cac:BuyerCustomerParty` endpoint) must be the key's "
        "institution.\n\n"
        "The same Order again answers `200` with the commitment; another with the same number `409`."
    ),
    openapi_extra=_xml_body("A Peppol BIS Order (UBL 2.1 Order, T01)."),
    responses={
        200: {"model": CommitmentOut, "description": "Registered before with the same content; nothing changed"},
        201: {"model": CommitmentOut, "description": "Registered"},
        401: problem_doc("Missing or wrong institution API key"),
        403: problem_doc("The Order's buyer is not the key's institution"),
        409: problem_doc("The number is registered with other content"),
        422: problem_doc(
            "Not a Peppol Order, an invalid one (`findings`), or a commitment the register refuses, naming "
            "the field (`order.…`): a supplier nobody registered, a line without a quantity"
        ),
    },
)
async def register_order(
    request: Request, runtime: RuntimeDep, institution: InstitutionDep, raw: DocumentBytes, response: Response
) -> CommitmentOut:
    from einvoice.parsers.order import parse_order_bytes
    from einvoice.services import orders as service

    await _validated(request, raw, document_type="Order", rules=ORDER_RULES, name="Peppol BIS Order (T01)")
    order = parse_order_bytes(raw)
    outcome = await in_database_thread(
        lambda: service.register_order(runtime.uow_factory(), order, institution=institution)
    )
    response.status_code = 201 if outcome.created else 200
    response.headers["Location"] = _location(outcome.commitment.number)
    if outcome.created:
        await match_late(runtime, institution.id, outcome.commitment.number)
    return _out(outcome.commitment)


despatch_advices = APIRouter(prefix="/v1/despatch-advices", tags=["commitments"], responses=PROBLEMS)


class DespatchLineOut(BaseModel):
    line: str = Field(description="The despatch line (`cac:DespatchLine/cbc:ID`)")
    order_line: str = Field(description="The order's (commitment's) line it ships against")
    quantity: str = Field(description="What was shipped (`cbc:DeliveredQuantity`)")
    unit_code: str | None
    seller_item_id: str | None
    description: str | None


class ExpectedOut(BaseModel):
    line: str = Field(description="The order's (commitment's) line")
    quantity: str = Field(description="What the advice says is coming on it")


class DespatchAdviceOut(BaseModel):
    """A Despatch Advice as stored: expected deliveries until the institution confirms it."""

    id: str
    number: str = Field(description="The advice's `cbc:ID`")
    order: str = Field(description="The order commitment's number (`cac:OrderReference/cbc:ID`)")
    issue_date: str | None
    status: str = Field(description="advised (expected deliveries) or confirmed (a receipt recorded)")
    receipt_reference: str | None = Field(description="The receipt the confirmation recorded: DESADV-<number>")
    lines: list[DespatchLineOut]
    expected: list[ExpectedOut] = Field(description="What is coming per order line")


class DespatchAdviceList(BaseModel):
    items: list[DespatchAdviceOut]
    count: int


class ConfirmationOut(BaseModel):
    despatch_advice: DespatchAdviceOut
    receipt: dict[str, Any] = Field(description="The receipt recorded: reference, received_on, lines")
    commitment: CommitmentOut = Field(description="The order with the receipt counted")


def _advice_out(advice: DespatchAdvice) -> DespatchAdviceOut:
    return DespatchAdviceOut.model_validate(advice.to_dict())


def _advice_location(advice_id: str) -> str:
    return f"/v1/despatch-advices/{advice_id}"


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such despatch advice, or it is another institution's")
}


@despatch_advices.post(
    "",
    status_code=201,
    summary="Send a Peppol Despatch Advice (T16): expected deliveries against an order",
    description=(
        "The Despatch Advice (UBL 2.1 DespatchAdvice, `urn:fdc:peppol.eu:poacc:trns:despatch_advice:3`) is "
        "validated against the UBL DespatchAdvice XSD and `PEPPOLBIS-T16.xslt`, then stored against the lines "
        "of its order: the commitment `cac:OrderReference/cbc:ID` of the institution it is delivered to "
        "(`cac:DeliveryCustomerParty` endpoint), registered with the key's supplier; each "
        "`cac:DespatchLine` ships `cbc:DeliveredQuantity` against the order line "
        "`cac:OrderLineReference/cbc:LineID`. What was shipped is not yet what arrived: nothing is received "
        "until the institution confirms the advice.\n\n"
        "The same advice again answers `200`; another with the same number `409`."
    ),
    openapi_extra=_xml_body("A Peppol Despatch Advice (UBL 2.1 DespatchAdvice, T16)."),
    responses={
        200: {"model": DespatchAdviceOut, "description": "Sent before with the same content; nothing changed"},
        201: {"model": DespatchAdviceOut, "description": "Stored as expected deliveries"},
        401: problem_doc("Missing or wrong supplier API key"),
        403: problem_doc("The advice's supplier (`cac:DespatchSupplierParty`) is not the key's supplier"),
        409: problem_doc("The number was sent before with other content"),
        422: problem_doc(
            "Not a Peppol Despatch Advice, an invalid one (`findings`), a customer that is no registered "
            "institution, or an order or order line the institution has not registered with this supplier "
            "(naming the element)"
        ),
    },
)
async def send_despatch_advice(
    request: Request, runtime: RuntimeDep, supplier: SupplierDep, raw: DocumentBytes, response: Response
) -> DespatchAdviceOut:
    from einvoice.parsers.despatch import parse_despatch_advice_bytes
    from einvoice.services import orders as service

    await _validated(
        request, raw, document_type="DespatchAdvice", rules=DESPATCH_ADVICE_RULES, name="Peppol Despatch Advice (T16)"
    )
    advice = parse_despatch_advice_bytes(raw)
    taken = await in_database_thread(
        lambda: service.take_despatch_advice(runtime.uow_factory(), advice, supplier=supplier)
    )
    response.status_code = 201 if taken.created else 200
    response.headers["Location"] = _advice_location(taken.advice.id)
    return _advice_out(taken.advice)


@despatch_advices.get(
    "",
    summary="The institution's Despatch Advices",
    description="Oldest first; `status=advised` lists those waiting for confirmation.",
    responses={401: problem_doc("Missing or wrong institution API key")},
)
async def list_despatch_advices(
    runtime: RuntimeDep,
    institution: InstitutionDep,
    status: Annotated[DespatchStatus | None, Query(description="advised or confirmed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DespatchAdviceList:
    from einvoice.services import orders as service

    items = await in_database_thread(
        lambda: service.list_despatch_advices(
            runtime.uow_factory(),
            institution_id=institution.id,
            status=None if status is None else status.value,
            limit=limit,
        )
    )
    return DespatchAdviceList(items=[_advice_out(a) for a in items], count=len(items))


@despatch_advices.get(
    "/{advice_id}",
    summary="One Despatch Advice with its expected deliveries",
    responses={401: problem_doc("Missing or wrong institution API key"), **NOT_FOUND},
)
async def get_despatch_advice(runtime: RuntimeDep, institution: InstitutionDep, advice_id: str) -> DespatchAdviceOut:
    from einvoice.services import orders as service

    found = await in_database_thread(
        lambda: service.despatch_advice(runtime.uow_factory(), advice_id, institution_id=institution.id)
    )
    return _advice_out(found)


@despatch_advices.post(
    "/{advice_id}/confirm",
    summary="Confirm what arrived of a Despatch Advice: it becomes a receipt",
    description=(
        "An empty body (or `{}`) confirms the advice whole: each order line receives what was shipped on it. "
        '`{"lines": [{"line": "1", "quantity": "40"}]}` confirms the quantities that arrived, per order line, '
        "each at most what the advice ships on it; lines left out received nothing. The receipt "
        "`DESADV-<number>` is recorded on the order, received today, as `POST /v1/commitments/{number}/receipts` "
        "records one (three-way matching lets invoices take what receipts say arrived). A confirmed advice "
        "cannot be confirmed again (`409`)."
    ),
    responses={
        401: problem_doc("Missing or wrong institution API key"),
        **NOT_FOUND,
        409: problem_doc("Confirmed already, or the order has a receipt of that reference"),
        422: problem_doc("A line the advice does not ship, a line twice, more than was shipped"),
    },
)
async def confirm_despatch_advice(
    runtime: RuntimeDep, institution: InstitutionDep, advice_id: str, body: ConfirmationInput | None = None
) -> ConfirmationOut:
    from einvoice.services import orders as service

    confirmed = await in_database_thread(
        lambda: service.confirm_despatch_advice(runtime.uow_factory(), advice_id, body, institution_id=institution.id)
    )
    await match_late(runtime, institution.id, confirmed.commitment.number)  # a receipt: three-way outcomes change
    return ConfirmationOut.model_validate(
        {
            "despatch_advice": confirmed.advice.to_dict(),
            "receipt": confirmed.receipt.to_dict(),
            "commitment": confirmed.commitment.to_dict(),
        }
    )
