"""Institutions' commitments: register, change, read, list, and record receipts against them.

Every route needs the institution's API key (``einvoice institutions new-key ENDPOINT``), and an
institution sees only its own commitments: another institution's number answers 404, exactly as a
number that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from einvoice.api.deps import InstitutionDep, RuntimeDep, in_database_thread
from einvoice.api.documents import problem_doc
from einvoice.domain.commitments import Commitment, CommitmentStatus
from einvoice.services.commitments import CommitmentInput, ReceiptInput

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Missing or wrong institution API key"),
    422: problem_doc(
        "Bad input, naming the field in `errors` (`location`, `message`): an unknown currency, a negative "
        "quantity, a line id twice, a supplier nobody registered, an amount written as a JSON number"
    ),
    503: problem_doc("Database busy or unreachable; retry after the Retry-After seconds"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such commitment, or it belongs to another institution")
}

router = APIRouter(prefix="/v1/commitments", tags=["commitments"], responses=PROBLEMS)


class CommitmentLineOut(BaseModel):
    id: str
    seller_item_id: str | None
    standard_item_id: str | None
    description: str | None
    quantity: str
    unit_code: str | None
    unit_price: str
    vat_category: str | None
    vat_rate: str | None
    account: str | None
    ordered: str = Field(description="The quantity committed (the line's `quantity`)")
    received: str = Field(description="What receipts say arrived")
    invoiced: str = Field(description="What matched invoices hold")


class CommitmentOut(BaseModel):
    """A commitment with the figures the control needs; every amount and quantity a decimal string."""

    number: str
    kind: str
    supplier: dict[str, str | None]
    currency: str
    valid_from: str | None
    valid_to: str | None
    budget: dict[str, str | None]
    account: str | None
    receipt_required: bool
    amount: str = Field(description="The ceiling, VAT included")
    tolerances: dict[str, str | None] = Field(description="null: that limit allows nothing (exact)")
    status: str
    reserved: str = Field(description="Held by matched invoices not yet posted")
    consumed: str = Field(description="Taken by posted invoices")
    remaining: str = Field(description="amount - reserved - consumed")
    lines: list[CommitmentLineOut]


class CommitmentList(BaseModel):
    items: list[CommitmentOut]
    count: int


class ReceiptOut(BaseModel):
    reference: str
    received_on: str
    lines: list[dict[str, str]]
    commitment: CommitmentOut = Field(description="The commitment with the receipt counted")


def _out(commitment: Commitment) -> CommitmentOut:
    return CommitmentOut.model_validate(commitment.to_dict())


async def match_late(runtime: Any, institution_id: str, number: str) -> None:
    """Send the institution's documents waiting in ``exception`` that name commitment ``number``
    through matching again: the first ``LATE_IN_REQUEST`` (20) in the request, the others through
    the outbox to the workers (``services.matching.match_late_documents``)."""
    from einvoice.matching import MatchConfig
    from einvoice.services.matching import match_late_documents

    config = MatchConfig.from_settings(runtime.settings)
    await in_database_thread(
        lambda: match_late_documents(runtime.uow_factory, institution_id=institution_id, number=number, config=config)
    )


def _location(number: str) -> str:
    return "/v1/commitments/" + quote(number, safe="")


@router.post(
    "",
    status_code=201,
    summary="Register a commitment (an order, contract or framework)",
    description=(
        "`amount` left out is the sum of the lines with their VAT; `tolerances` left out are the "
        "institution's defaults (`einvoice institutions set-tolerances`), which are exact unless set. "
        "Every amount and quantity is a decimal written as a string. The supplier is named by any one "
        "of its registered endpoint, VAT id or legal id.\n\n"
        "The same number sent again answers `200` with the commitment when the content is the same, "
        "`409` when it differs (change a commitment with `PUT`)."
    ),
    responses={
        200: {"model": CommitmentOut, "description": "Registered before with the same content; nothing changed"},
        201: {"model": CommitmentOut, "description": "Registered"},
        409: problem_doc("The number is registered with other content"),
    },
)
async def register_commitment(
    runtime: RuntimeDep, institution: InstitutionDep, body: CommitmentInput, response: Response
) -> CommitmentOut:
    from einvoice.services import commitments

    outcome = await in_database_thread(
        lambda: commitments.register(runtime.uow_factory(), body, institution_id=institution.id)
    )
    response.status_code = 201 if outcome.created else 200
    response.headers["Location"] = _location(outcome.commitment.number)
    if outcome.created:
        await match_late(runtime, institution.id, outcome.commitment.number)
    return _out(outcome.commitment)


@router.get(
    "",
    summary="List the institution's commitments",
    description="By number. `supplier`: the supplier's id, endpoint (SCHEME:ID), VAT id or legal id.",
)
async def list_commitments(
    runtime: RuntimeDep,
    institution: InstitutionDep,
    supplier: Annotated[str | None, Query(max_length=200, description="Only this supplier's")] = None,
    status: Annotated[CommitmentStatus | None, Query(description="open or closed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CommitmentList:
    from einvoice.services import commitments

    items = await in_database_thread(
        lambda: commitments.list_commitments(
            runtime.uow_factory(),
            institution_id=institution.id,
            supplier=supplier,
            status=None if status is None else status.value,
            limit=limit,
        )
    )
    return CommitmentList(items=[_out(c) for c in items], count=len(items))


@router.get(
    "/{number:path}",
    summary="One commitment with its figures: reserved, consumed, remaining; per line ordered, received, invoiced",
    responses=NOT_FOUND,
)
async def get_commitment(runtime: RuntimeDep, institution: InstitutionDep, number: str) -> CommitmentOut:
    from einvoice.services import commitments

    found = await in_database_thread(
        lambda: commitments.get(runtime.uow_factory(), institution_id=institution.id, number=number)
    )
    return _out(found)


@router.put(
    "/{number:path}",
    summary="Change a commitment",
    description=(
        "The whole commitment as for `POST`, with the number of the address. What invoices and receipts "
        "hold is kept: lines keep their `received` and `invoiced` by id. A line that holds any cannot be "
        "removed, nor the supplier or currency changed while invoices hold an amount (`409`)."
    ),
    responses={**NOT_FOUND, 409: problem_doc("The change would take away what invoices or receipts hold")},
)
async def change_commitment(
    runtime: RuntimeDep, institution: InstitutionDep, number: str, body: CommitmentInput
) -> CommitmentOut:
    from einvoice.services import commitments

    changed = await in_database_thread(
        lambda: commitments.change(runtime.uow_factory(), body, institution_id=institution.id, number=number)
    )
    await match_late(runtime, institution.id, number)
    return _out(changed)


@router.post(
    "/{number:path}/receipts",
    status_code=201,
    summary="Record a receipt: goods received or services accepted",
    description=(
        "Each line's quantity is added to what the commitment line has `received` (three-way matching "
        "lets invoices take only that). The same reference again answers `200` when its content is the "
        "same, `409` when it differs."
    ),
    responses={
        200: {"model": ReceiptOut, "description": "Recorded before with the same content; nothing changed"},
        201: {"model": ReceiptOut, "description": "Recorded"},
        **NOT_FOUND,
        409: problem_doc("The reference is recorded with other content"),
    },
)
async def record_receipt(
    runtime: RuntimeDep, institution: InstitutionDep, number: str, body: ReceiptInput, response: Response
) -> ReceiptOut:
    from einvoice.services import commitments

    outcome = await in_database_thread(
        lambda: commitments.record_receipt(runtime.uow_factory(), body, institution_id=institution.id, number=number)
    )
    response.status_code = 201 if outcome.created else 200
    if outcome.created:  # three-way outcomes change with what arrived
        await match_late(runtime, institution.id, number)
    return ReceiptOut.model_validate({**outcome.receipt.to_dict(), "commitment": outcome.commitment.to_dict()})
