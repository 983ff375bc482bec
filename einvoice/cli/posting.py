"""Posting administration: ``einvoice accounts import``, ``einvoice posting-profile set|show``,
``einvoice erp add|confirm``, ``einvoice rates import``, ``einvoice ledger trial-balance``.

Exit codes: 0 done; 1 refused (unknown institution, a malformed chart, profile or rates file, an
account the profile names missing from the chart); 2 the database cannot be reached or is not
migrated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from einvoice.cli.admin import _refused, opened

if TYPE_CHECKING:
    from einvoice.store import UnitOfWork

T = TypeVar("T")

accounts_app = typer.Typer(
    help="Each institution's chart of accounts, versioned by effective date.", no_args_is_help=True
)
profile_app = typer.Typer(help="Each institution's posting profile: the accounts entries use.", no_args_is_help=True)
erp_app = typer.Typer(help="The ERPs that take journal entries, and their delivery.", no_args_is_help=True)
rates_app = typer.Typer(help="Exchange rates for documents in another currency.", no_args_is_help=True)
ledger_app = typer.Typer(help="What the posted journal entries add up to.", no_args_is_help=True)

InstitutionOption = Annotated[
    str,
    typer.Option(
        "--institution", metavar="ENDPOINT", help="The institution's Peppol endpoint SCHEME:ID, e.g. 0192:987654325."
    ),
]


def _in_database(call: Callable[[Callable[[], UnitOfWork]], T]) -> T:
    """``call(uow_factory)`` on the configured database; the errors a person can fix are refusals
    (exit 1): an unknown institution or entry, input the service refuses, a conflict."""
    from einvoice.errors import AccountError, ConflictError, NotFoundError, PostingSetupError

    with opened() as uow_factory:
        try:
            return call(uow_factory)
        except (NotFoundError, PostingSetupError, AccountError, ConflictError) as exc:
            raise _refused(exc) from None


def _date_option(value: str | None, option: str, default: date | None = None) -> date:
    try:
        return date.fromisoformat(value) if value else (default or datetime.now(UTC).date())
    except ValueError:
        raise _refused(f"{option} must be a date YYYY-MM-DD, not {value!r}") from None


@accounts_app.command("import")
def accounts_import(
    institution: InstitutionOption,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with the header number,name,kind (kind: asset, liability, equity, income or expense).",
            exists=True,
            dir_okay=False,
        ),
    ],
    effective_from: Annotated[
        str | None,
        typer.Option("--effective-from", help="Date the chart is in force from (YYYY-MM-DD); default today."),
    ] = None,
) -> None:
    """Load an institution's chart of accounts, in force from --effective-from.

    A chart of the same date is replaced; earlier ones stay for the documents posted under them.
    Every account the institution's posting profile names must be in it."""
    from einvoice.errors import AccountError, NotFoundError, PostingSetupError
    from einvoice.services import posting

    try:
        when = date.fromisoformat(effective_from) if effective_from else datetime.now(UTC).date()
    except ValueError:
        raise _refused(f"--effective-from must be a date YYYY-MM-DD, not {effective_from!r}") from None
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _refused(f"{file} is not UTF-8") from None
    with opened() as uow_factory:
        try:
            chart = posting.import_accounts(uow_factory(), endpoint=institution, text=text, effective_from=when)
        except (NotFoundError, PostingSetupError, AccountError) as exc:
            raise _refused(exc) from None
    typer.echo(f"{len(chart.accounts)} accounts for {institution}, in force from {chart.effective_from}")


@profile_app.command("set")
def profile_set(
    institution: InstitutionOption,
    profile: Annotated[
        str,
        typer.Argument(
            help='The profile as JSON, e.g. \'{"payable": "5310", "input_vat": {"21": "5721"}, ...}\', '
            "or @FILE to read it from a file."
        ),
    ],
) -> None:
    """Set an institution's posting profile; documents that waited in approved for it are sent on.

    Keys: payable, input_vat (per rate), output_vat, self_assessment_rate, rounding, default_expense,
    prepaid, allowances (own_accounts or spread), allowance_account, charge_account,
    accounting_currency, accounting_references. With a chart of accounts loaded, every account
    named must be in it."""
    from einvoice.errors import AccountError, NotFoundError, PostingSetupError
    from einvoice.services import posting

    try:
        text = Path(profile[1:]).read_text(encoding="utf-8") if profile.startswith("@") else profile
    except OSError as exc:
        raise _refused(f"cannot read {profile[1:]}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refused(f"the profile is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _refused("the profile is a JSON object")
    with opened() as uow_factory:
        try:
            saved, sent = posting.set_posting_profile(uow_factory(), endpoint=institution, data=data)
        except (NotFoundError, PostingSetupError, AccountError) as exc:
            raise _refused(exc) from None
    missing = saved.missing()
    state = f"incomplete, lacks {', '.join(missing)}" if missing else "complete"
    typer.echo(f"posting profile of {institution} set ({state}); {len(sent)} waiting documents sent on")


@profile_app.command("show")
def profile_show(institution: InstitutionOption) -> None:
    """Print an institution's posting profile as JSON."""
    from einvoice.errors import AccountError, NotFoundError
    from einvoice.services import posting

    with opened() as uow_factory:
        try:
            profile = posting.posting_profile(uow_factory(), endpoint=institution)
        except (NotFoundError, AccountError) as exc:
            raise _refused(exc) from None
    if profile is None:
        raise _refused(f"institution {institution} has no posting profile")
    typer.echo(json.dumps(profile.to_dict(), indent=2))


@erp_app.command("add")
def erp_add(
    institutions: Annotated[
        list[str],
        typer.Option(
            "--institution",
            metavar="ENDPOINT",
            help="An institution the ERP serves (its Peppol endpoint SCHEME:ID); repeat for each.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The ERP's name, as the documents' history names it.")],
) -> None:
    """Register an ERP and print its API key on the last line (only its hash is stored).

    The key pulls the journal entries of the institutions named (GET /v1/erp/entries), acknowledges
    them (POST /v1/erp/entries/ID/ack) and records payments (POST /v1/erp/documents/ID/paid); it
    reaches nothing of another institution."""
    from einvoice.services import erp

    added, api_key = _in_database(lambda uow_factory: erp.add_erp(uow_factory(), name=name, endpoints=institutions))
    typer.echo(f"ERP {added.id}: {added.name}, serving {', '.join(added.institutions)}")
    typer.echo("API key (shown only now; only its hash is stored):")
    typer.echo(api_key)


@erp_app.command("confirm")
def erp_confirm(
    batch: Annotated[str, typer.Argument(help="The batch file's name, e.g. je_<document id>.jsonl.")],
) -> None:
    """Confirm a file batch as the ERP's import does: write BATCH.ack in EINVOICE_ERP_OUTBOX_DIR and
    record its document posted, the history naming this command as who confirmed."""
    from einvoice.bootstrap import file_export
    from einvoice.services import posting
    from einvoice.settings import get_settings

    export = file_export(get_settings())
    try:
        status = _in_database(
            lambda uow_factory: posting.confirm_batch(uow_factory, export, batch, by="cli:erp confirm")
        )
    except (FileNotFoundError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"batch {batch} confirmed; its document is {status}")


@rates_app.command("import")
def rates_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: the ECB reference rates (Date,USD,JPY,… one row a day) or currency,date,rate.",
            exists=True,
            dir_okay=False,
        ),
    ],
    base: Annotated[
        str, typer.Option("--base", help="The currency the rates are per one unit of (the ECB's: EUR).")
    ] = "EUR",
) -> None:
    """Load exchange rates: a document in another currency than its institution's accounting
    currency, without its VAT in accounting currency (BT-111), posts at the latest rate on or
    before its issue date. Documents that waited in approved for a rate are sent on."""
    from einvoice.services import posting

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _refused(f"{file} is not UTF-8") from None
    count, sent = _in_database(
        lambda uow_factory: posting.import_rates(uow_factory, text, base=base, source=f"{file.name}")
    )
    typer.echo(f"{count} rates against {base.upper()} loaded from {file.name}; {len(sent)} waiting documents sent on")


@ledger_app.command("trial-balance")
def ledger_trial_balance(
    institution: InstitutionOption,
    start: Annotated[str, typer.Option("--from", metavar="DATE", help="The first posting date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", metavar="DATE", help="The last posting date, YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON the API answers.")] = False,
) -> None:
    """Debits, credits and balance per account of the institution's posted journal entries whose
    posting date is from --from to --to (both included); debits equal credits."""
    from einvoice.services import posting

    first, last = _date_option(start, "--from"), _date_option(end, "--to")
    balance = _in_database(
        lambda uow_factory: posting.institution_trial_balance(
            uow_factory(),
            endpoint=institution,
            start=first,
            end=last,
        )
    )
    data = balance.to_dict()
    if as_json:
        typer.echo(json.dumps({"institution": institution, "from": start, "to": end, **data}, indent=2))
        return
    typer.echo(f"trial balance of {institution}, posting dates {first} to {last}: {balance.entries} entries")
    typer.echo(f"{'account':<12} {'name':<32} {'debit':>14} {'credit':>14} {'balance':>14}")
    for row in data["accounts"]:
        typer.echo(
            f"{row['account']:<12} {(row['name'] or '')[:32]:<32} {row['debit']:>14} {row['credit']:>14} "
            f"{row['balance']:>14}"
        )
    totals = data["totals"]
    typer.echo(f"{'total':<12} {'':<32} {totals['debit']:>14} {totals['credit']:>14} {totals['balance']:>14}")


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(profile_app, name="posting-profile")
    app.add_typer(erp_app, name="erp")
    app.add_typer(rates_app, name="rates")
    app.add_typer(ledger_app, name="ledger")
