"""The institution routes: each institution's chart of accounts, posting profile and trial balance,
with its own API key (``einvoice institutions new-key ENDPOINT``): another institution's key
answers 403."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from einvoice.api.deps import InstitutionDep, RuntimeDep, in_database_thread
from einvoice.api.documents import problem_doc
from einvoice.errors import AuthorizationError, PostingSetupError
from einvoice.services import InstitutionView, posting

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Missing or wrong institution API key"),
    403: problem_doc("The key is another institution's"),
    503: problem_doc("Database busy or unreachable; retry after the Retry-After seconds"),
}

router = APIRouter(prefix="/v1/institutions/{endpoint}", tags=["institutions"], responses=PROBLEMS)

PROFILE_EXAMPLE = {
    "payable": "5310",
    "input_vat": {"21": "5721", "12": "5722", "5": "5723"},
    "output_vat": "5790",
    "self_assessment_rate": "21",
    "rounding": "8690",
    "default_expense": "2239",
    "prepaid": "2390",
    "allowances": "own_accounts",
    "allowance_account": "2239",
    "charge_account": "2239",
    "accounting_currency": "EUR",
}


async def own_institution(endpoint: str, institution: InstitutionDep) -> InstitutionView:
    """The institution whose key the request carries, which must be the one of the route's
    ``{endpoint}``: AuthenticationError (401) without a known key, AuthorizationError (403) for
    another institution's route."""
    if institution.endpoint != endpoint:
        raise AuthorizationError(f"the key is {institution.endpoint}'s, not {endpoint}'s")
    return institution


OwnInstitutionDep = Annotated[InstitutionView, Depends(own_institution)]


@router.put(
    "/accounts",
    summary="Load the institution's chart of accounts",
    description=(
        "The body is CSV (`text/csv`): a header `number,name,kind`, then one account a row (kind: asset, "
        "liability, equity, income or expense). The chart is in force from `effective_from` (default "
        "today); a chart of the same date is replaced, earlier ones stay. Every account the institution's "
        "posting profile names must be in it (`422` naming those that are not). Institution key."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": "number,name,kind\n5310,Payables,liability\n"}
            },
        }
    },
    responses={422: problem_doc("A malformed row, or an account the posting profile names not in the chart")},
)
async def put_accounts(
    endpoint: str,
    institution: OwnInstitutionDep,
    runtime: RuntimeDep,
    request: Request,
    effective_from: Annotated[date | None, Query(description="The date the chart is in force from.")] = None,
) -> dict[str, Any]:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise PostingSetupError("the chart of accounts is UTF-8 CSV") from None
    when = effective_from or datetime.now(UTC).date()
    chart = await in_database_thread(
        lambda: posting.import_accounts(runtime.uow_factory(), endpoint=endpoint, text=text, effective_from=when)
    )
    return {
        "institution": endpoint,
        "effective_from": chart.effective_from.isoformat(),
        "accounts": [{"number": a.number, "name": a.name, "kind": a.kind.value} for a in chart.accounts],
    }


@router.put(
    "/posting-profile",
    summary="Set the institution's posting profile",
    description=(
        "The accounts journal entries use: `payable`, `input_vat` (per VAT rate), `output_vat` (self-assessed "
        "VAT of categories AE and K), `self_assessment_rate`, `rounding`, `default_expense`, `prepaid` "
        "(advances, BT-113), `allowances` (`own_accounts` or `spread` over the lines), `allowance_account`, "
        "`charge_account`, `accounting_currency` (default EUR) and, optionally, `accounting_references` "
        "(BT-133 / BT-19 value -> account). With a chart of accounts loaded, every account named must be "
        "in it (`422`). Documents that waited in `approved` for a profile are sent on; the answer says "
        "what a complete profile still lacks (`missing`) and how many were sent (`sent_on`). Institution key."
    ),
    responses={422: problem_doc("An unknown key, a value of the wrong kind, an account not in the chart")},
)
async def put_posting_profile(
    endpoint: str,
    institution: OwnInstitutionDep,
    runtime: RuntimeDep,
    profile: Annotated[dict[str, Any], Body(examples=[PROFILE_EXAMPLE])],
) -> dict[str, Any]:
    saved, sent = await in_database_thread(
        lambda: posting.set_posting_profile(runtime.uow_factory(), endpoint=endpoint, data=profile)
    )
    return {"institution": endpoint, "profile": saved.to_dict(), "missing": saved.missing(), "sent_on": len(sent)}


@router.get(
    "/trial-balance",
    summary="The institution's trial balance",
    description=(
        "Debits, credits and balance (debit minus credit) per account, from the institution's posted journal "
        "entries whose posting date is from `from` to `to` (both included), accounts named from the chart of "
        'accounts in force on `to`: `{"accounts": [{"account", "name", "debit", "credit", "balance"}], '
        '"totals": {"debit", "credit", "balance", "entries"}}`; debits equal credits. Institution key.'
    ),
    responses={422: problem_doc("A period that ends before it starts")},
)
async def get_trial_balance(
    endpoint: str,
    institution: OwnInstitutionDep,
    runtime: RuntimeDep,
    start: Annotated[date, Query(alias="from", description="The first posting date (YYYY-MM-DD).")],
    end: Annotated[date, Query(alias="to", description="The last posting date (YYYY-MM-DD).")],
) -> dict[str, Any]:
    balance = await in_database_thread(
        lambda: posting.institution_trial_balance(runtime.uow_factory(), endpoint=endpoint, start=start, end=end)
    )
    return {"institution": endpoint, "from": start.isoformat(), "to": end.isoformat(), **balance.to_dict()}
