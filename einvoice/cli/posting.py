"""Posting administration: ``einvoice accounts import``, ``einvoice posting-profile set|show``,
``einvoice erp confirm``.

Exit codes: 0 done; 1 refused (unknown institution, a malformed chart or profile, an account
the profile names missing from the chart); 2 the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from einvoice.cli.admin import _refused, opened

accounts_app = typer.Typer(
    help="Each institution's chart of accounts, versioned by effective date.", no_args_is_help=True
)
profile_app = typer.Typer(help="Each institution's posting profile: the accounts entries use.", no_args_is_help=True)
erp_app = typer.Typer(help="Delivery of journal entries to the ERP.", no_args_is_help=True)

InstitutionOption = Annotated[
    str,
    typer.Option(
        "--institution", metavar="ENDPOINT", help="The institution's Peppol endpoint SCHEME:ID, e.g. 0192:987654325."
    ),
]


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


@erp_app.command("confirm")
def erp_confirm(
    batch: Annotated[str, typer.Argument(help="The batch file's name, e.g. je_<document id>.jsonl.")],
) -> None:
    """Confirm a file batch as the ERP's import does, by writing BATCH.ack in EINVOICE_ERP_OUTBOX_DIR.

    Its document is posted at the next retry of its post stage."""
    from einvoice.posting.files import FileExport
    from einvoice.services import posting
    from einvoice.settings import get_settings

    settings = get_settings()
    export = FileExport(settings.effective_erp_outbox_dir, settings.erp_file_format)
    try:
        posting.confirm_batch(export, batch)
    except (FileNotFoundError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"batch {batch} confirmed")


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(profile_app, name="posting-profile")
    app.add_typer(erp_app, name="erp")
