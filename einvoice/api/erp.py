"""The ERP's routes, with the ERP's API key (``einvoice erp add``): the pull feed of journal
entries, their acknowledgement, and payments. An ERP reaches the entries and documents of the
institutions it serves only: anything else answers 404."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from einvoice.api.deps import ErpDep, RuntimeDep, in_database_thread
from einvoice.api.documents import problem_doc
from einvoice.services import erp as erp_service

router = APIRouter(
    prefix="/v1/erp",
    tags=["erp"],
    responses={
        401: problem_doc("Missing or unknown ERP API key"),
        503: problem_doc("Database busy or unreachable; retry after the Retry-After seconds"),
    },
)


@router.get(
    "/entries",
    summary="Pull journal entries not acknowledged yet",
    description=(
        "The journal entries of the ERP's institutions that it has not acknowledged, in a stable order (when "
        "each was built, then its document), at most `limit` after the cursor `after`. The answer is "
        '`{"entries": [...], "next": CURSOR}`: pass `next` as `after` to continue; `next` stays the same when '
        "no entry came. A posting job starts without `after` and follows `next` until `entries` is empty. An entry "
        "not acknowledged is offered again to every pull that starts before it; an acknowledged one never again. "
        "Each entry is the entry JSON (the same as push and files deliver); its `id` is what to acknowledge."
    ),
    responses={422: problem_doc("`after` is not a cursor of this feed, or `limit` is out of range")},
)
async def get_entries(
    erp: ErpDep,
    runtime: RuntimeDep,
    after: Annotated[str | None, Query(description="The `next` of the previous pull; none: from the start.")] = None,
    limit: Annotated[int, Query(ge=1, le=erp_service.MAX_PULL, description="Entries at most.")] = 100,
) -> dict[str, Any]:
    return await in_database_thread(lambda: erp_service.pull(runtime.uow_factory(), erp, after=after, limit=limit))


class AckBatch(BaseModel):
    ids: list[str] = Field(
        min_length=1,
        max_length=erp_service.MAX_PULL,
        description=f"The ids of the entries the ERP applied, 1 to {erp_service.MAX_PULL} (a page of the feed).",
    )


@router.post(
    "/entries/ack",
    summary="Acknowledge several journal entries in one request",
    description=(
        "Confirms, as the acknowledgement of one entry does, each entry named in `ids` (1 to "
        f"{erp_service.MAX_PULL}, at most a page of the feed): its document becomes `posted`. The entries are "
        f"confirmed {erp_service.ACK_TRANSACTION} to a transaction; the answer is per id, in the order given (an "
        "id given twice answers once): "
        '`{"entries": [{"id", "acknowledged": true, "document_id", "acknowledged_at", "acknowledged_by", '
        '"document_status"} | {"id", "acknowledged": false, "error": "not_found", "detail"}]}`. An entry '
        "unknown or of an institution the ERP does not serve answers `not_found` without stopping the others. "
        "Idempotent: acknowledging again answers the same."
    ),
    responses={422: problem_doc("`ids` empty, too many, or not a list of strings")},
)
async def ack_entries(
    erp: ErpDep,
    runtime: RuntimeDep,
    batch: Annotated[AckBatch, Body(examples=[{"ids": ["je_0f3c9a1b2d4e4f5a8b6c7d8e9f0a1b2c"]}])],
) -> dict[str, Any]:
    answers = await in_database_thread(erp_service.acknowledge_many, runtime.uow_factory, erp, batch.ids)
    return {"entries": answers}


@router.post(
    "/entries/{entry_id}/ack",
    summary="Acknowledge a journal entry: the ERP applied it",
    description=(
        "Confirms that the ERP applied the entry: it is offered no more, and its document becomes `posted` "
        "(the history names the ERP). Idempotent: acknowledging again answers the same. `404` for an entry of an "
        "institution the ERP does not serve."
    ),
    responses={404: problem_doc("No such entry among the ERP's institutions'")},
)
async def ack_entry(entry_id: str, erp: ErpDep, runtime: RuntimeDep) -> dict[str, Any]:
    confirmed = await in_database_thread(erp_service.acknowledge, runtime.uow_factory, erp, entry_id)
    return confirmed.to_dict()


class Payment(BaseModel):
    paid_on: date = Field(description="The date the payment left the institution's account.")
    amount: Decimal | None = Field(None, description="The amount paid; the amount due (BT-115) when left out.")
    reference: str | None = Field(None, max_length=200, description="The ERP's payment reference.")


@router.post(
    "/documents/{document_id}/paid",
    summary="Record a document's payment",
    description=(
        "The ERP paid a posted document in full: the payment is kept and the supplier gets the Invoice Response "
        "`PD` (fully paid), which may follow only `AP` and after which nothing follows. Reporting the same "
        'payment again answers the same with `"recorded": false`.'
    ),
    responses={
        404: problem_doc("No such document among the ERP's institutions'"),
        409: problem_doc("Not posted, not approved to the supplier, or paid before with other figures"),
        422: problem_doc("An amount other than the amount due"),
    },
)
async def post_paid(
    document_id: str,
    erp: ErpDep,
    runtime: RuntimeDep,
    payment: Annotated[Payment, Body(examples=[{"paid_on": "2026-12-01", "reference": "PAY-2026-0042"}])],
) -> dict[str, Any]:
    return await in_database_thread(
        lambda: erp_service.record_payment(
            runtime.uow_factory,
            erp,
            document_id,
            paid_on=payment.paid_on,
            amount=payment.amount,
            reference=payment.reference,
        )
    )
