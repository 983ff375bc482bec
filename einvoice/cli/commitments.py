"""``einvoice commitments import``: institutions' commitments in bulk, from CSV.

Exit codes: 0 every row imported (or already there); 1 some rows failed (each listed) or the file
or institution cannot be used; 2 the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from einvoice.cli.admin import EXIT_REFUSED, _refused, database_in_use, opened

commitments_app = typer.Typer(help="Institutions' commitments (orders, contracts, frameworks).", no_args_is_help=True)

IMPORT_HELP = """Import commitments from a CSV file, one row per commitment line.

The file is UTF-8, comma-separated, with a header row naming the columns (in any order; those left
out are empty):

number, kind, supplier_endpoint, supplier_vat, supplier_legal_id, currency, valid_from, valid_to,
budget_programme, budget_economic_code, account, receipt_required, amount, price_percent,
price_amount, quantity_percent, amount_percent, amount_amount, status, line, seller_item_id,
standard_item_id, description, quantity, unit_code, unit_price, vat_category, vat_rate, line_account

number, kind and currency are required, and one supplier column. The commitment's columns repeat on
each of its rows (or stay empty after the first); a contract or framework without lines is one row
with line empty. Values as in POST /v1/commitments: decimals such as 3.50, dates 2026-01-31, an
amount left empty is the lines with their VAT, tolerances left empty the institution's.

A row that fails is reported with its line and column and stops only its own commitment; a
commitment registered before with the same content is left as it is, so importing a file twice
changes nothing. One registered before with other content fails (change it with PUT).

Each commitment registered sends the institution's invoices waiting in exception that name it
(BT-13, BT-12 or BT-10) through matching again, as it is imported."""


# One line per paragraph: the help formatter wraps them to the terminal's width.
IMPORT_HELP = "\n\n".join(" ".join(paragraph.split()) for paragraph in IMPORT_HELP.split("\n\n"))


@commitments_app.command("import", help=IMPORT_HELP)
def commitments_import(
    file: Annotated[Path, typer.Argument(help="The CSV file.", exists=True, dir_okay=False, readable=True)],
    institution: Annotated[str, typer.Option("--institution", help="The institution's Peppol endpoint SCHEME:ID.")],
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from einvoice.errors import NotFoundError
    from einvoice.matching import MatchConfig
    from einvoice.services import accounts, commitments
    from einvoice.services.matching import match_late_documents
    from einvoice.settings import get_settings

    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _refused(f"{file}: not a UTF-8 CSV file: {exc}") from None
    unknown = [name for name in header if name not in commitments.CSV_COLUMNS]
    missing = [name for name in commitments.REQUIRED_COLUMNS if name not in header]
    if unknown or missing:
        raise _refused(
            f"{file}: the header "
            + "; ".join(
                part
                for part in (
                    f"has unknown columns: {', '.join(unknown)}" if unknown else "",
                    f"lacks the columns: {', '.join(missing)}" if missing else "",
                )
                if part
            )
            + f" (the columns: {', '.join(commitments.CSV_COLUMNS)})"
        )

    with opened() as uow_factory:
        try:
            owner = accounts.institution_by_endpoint(uow_factory(), institution)
        except accounts.AccountError as exc:
            raise _refused(exc) from None
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
        groups = commitments.group_rows(rows)
        outcomes = []
        console = Console(stderr=True)
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        ) as progress:
            task = progress.add_task("import", total=len(groups))
            config = MatchConfig.from_settings(get_settings())
            for _, group in groups:
                outcome = commitments.import_commitment(uow_factory(), group, institution_id=owner.id)
                if outcome.outcome == "created":  # invoices that waited for it are matched again
                    match_late_documents(uow_factory, institution_id=owner.id, number=outcome.number, config=config)
                outcomes.append(outcome)
                progress.advance(task)

    failed = [o for o in outcomes if o.outcome == "failed"]
    for outcome in failed:
        reported = {error.row for error in outcome.errors}
        for error in outcome.errors:
            where = f"row {error.row}" + (f", {error.column}" if error.column else "")
            typer.echo(f"{where}: {error.message}")
        for row in outcome.rows:
            if row not in reported:
                typer.echo(
                    f"row {row}: not imported: another row of commitment {outcome.number or '(no number)'} failed"
                )
    created = sum(o.outcome == "created" for o in outcomes)
    unchanged = sum(o.outcome == "unchanged" for o in outcomes)
    failed_rows = sum(len(o.rows) for o in failed)
    typer.echo(
        f"{len(rows)} rows, {len(outcomes)} commitments for {owner.endpoint}: {created} created, "
        f"{unchanged} unchanged (registered before), {len(failed)} failed ({failed_rows} rows)"
    )
    if failed:
        raise typer.Exit(EXIT_REFUSED)


def register(app: typer.Typer) -> None:
    app.add_typer(commitments_app, name="commitments")
