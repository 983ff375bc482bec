"""Administration: ``einvoice institutions add|list|new-key|set-tolerances``, ``einvoice suppliers add|list``,
``einvoice documents show|retry``, ``einvoice db upgrade``.

These need the database only (no broker). In embedded mode the database is created and migrated
on first use; in production run ``einvoice db upgrade`` once per release.

Exit codes: 0 done; 1 refused (invalid endpoint, endpoint already registered, unknown id, a
document whose state does not allow the decision: ``error: conflict: …``); 2 the database cannot
be reached or is not migrated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from einvoice.settings import Settings
    from einvoice.store import UnitOfWork

EXIT_REFUSED = 1
EXIT_DATABASE = 2

institutions_app = typer.Typer(
    help="Buyer institutions (documents are addressed to their Peppol endpoint).", no_args_is_help=True
)
suppliers_app = typer.Typer(help="Suppliers allowed to submit, and their API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
documents_app = typer.Typer(help="Look at one document, send a dead one back to its stage.", no_args_is_help=True)

EndpointOption = Annotated[str, typer.Option("--endpoint", help="Peppol endpoint SCHEME:ID, e.g. 0192:987654325.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UncheckedOption = Annotated[
    bool,
    typer.Option(
        "--unchecked",
        help="Register the identifiers as given, without checking the endpoint scheme against the Peppol "
        "EAS code list, check digits or the VAT identifier's form (for made-up test identifiers).",
    ),
]


def _engine(settings: Settings) -> Engine:
    from einvoice.bootstrap import database_engine

    return database_engine(settings)


def _open(*, migrate_embedded: bool = True) -> tuple[Engine, Callable[[], UnitOfWork]]:
    """Engine and unit-of-work factory; migrates in embedded mode, checks the revision otherwise."""
    from einvoice import store
    from einvoice.settings import get_settings

    settings = get_settings()
    engine = _engine(settings)
    try:
        if settings.mode == "embedded" and migrate_embedded:
            store.migrate(engine)
        elif store.current_revision(engine) != store.head_revision():
            typer.echo("error: the database is not at the current schema; run 'einvoice db upgrade'", err=True)
            raise typer.Exit(EXIT_DATABASE)
    except typer.Exit:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        typer.echo(f"error: database unavailable: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_DATABASE) from None
    return engine, store.uow_factory_for(engine)


@contextmanager
def opened(*, migrate_embedded: bool = True) -> Iterator[Callable[[], UnitOfWork]]:
    """The unit-of-work factory of the database in use (``_open``) for the ``with`` block; the
    engine is disposed of when it ends."""
    engine, uow_factory = _open(migrate_embedded=migrate_embedded)
    try:
        yield uow_factory
    finally:
        engine.dispose()


def database_in_use() -> str:
    """The database the admin commands open, for messages (password masked)."""
    from einvoice.cli.config import mask_url
    from einvoice.settings import get_settings

    return mask_url(get_settings().effective_database_url)


def _say_empty(what: str) -> None:
    # An empty register is most often the wrong database (another data directory, another URL).
    typer.echo(f"no {what} registered in {database_in_use()}", err=True)


def _refused(exc: Exception | str) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(EXIT_REFUSED)


def _refused_registration(exc: Exception) -> typer.Exit:
    from einvoice.services.accounts import InvalidIdentifierError

    if isinstance(exc, InvalidIdentifierError):
        typer.echo(f"error: {exc}", err=True)
        typer.echo("(an administrator can register it as given with --unchecked)", err=True)
        return typer.Exit(EXIT_REFUSED)
    return _refused(exc)


@institutions_app.command("add")
def institutions_add(
    name: Annotated[str, typer.Option("--name", help="The institution's name.")],
    endpoint: EndpointOption,
    unchecked: UncheckedOption = False,
) -> None:
    """Register a buyer institution. Its endpoint is checked against the Peppol EAS code list and the
    scheme's check digits unless --unchecked."""
    from einvoice.services import accounts

    with opened() as uow_factory:
        try:
            institution = accounts.add_institution(uow_factory(), name=name, endpoint=endpoint, unchecked=unchecked)
        except accounts.AccountError as exc:
            raise _refused_registration(exc) from None
    typer.echo(f"institution {institution.id}: {institution.name} ({institution.endpoint})")


@institutions_app.command("new-key")
def institutions_new_key(
    endpoint: Annotated[str, typer.Argument(help="The institution's Peppol endpoint SCHEME:ID.")],
) -> None:
    """Issue the institution an API key, for its commitments (POST /v1/commitments and the routes
    under it) and its books (PUT /v1/institutions/ENDPOINT/accounts and /posting-profile), and print
    it on the last line. Only its hash is stored; a key issued before stops working. The key
    reaches only this institution's commitments and books."""
    from einvoice.errors import NotFoundError
    from einvoice.services import accounts

    with opened() as uow_factory:
        try:
            institution, api_key = accounts.new_institution_key(uow_factory(), endpoint)
        except accounts.AccountError as exc:
            raise _refused(exc) from None
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    typer.echo(f"institution {institution.id}: {institution.name} ({institution.endpoint})")
    typer.echo("API key (shown only now; only its hash is stored; a key issued before no longer works):")
    typer.echo(api_key)


def _tolerance(value: str | None, option: str) -> Decimal | None:
    from einvoice.domain.money import DecimalSyntaxError, parse_decimal

    if value is None:
        return None
    try:
        number = parse_decimal(value)
    except DecimalSyntaxError:
        raise _refused(f"{option}: not a decimal number: {value!r}") from None
    if number < 0:
        raise _refused(f"{option}: must not be negative, not {value}")
    return number


def _tolerance_option(name: str, what: str) -> Any:
    return typer.Option(name, help=what + " Left out: not allowed (exact).")


@institutions_app.command("set-tolerances")
def institutions_set_tolerances(
    endpoint: Annotated[str, typer.Argument(help="The institution's Peppol endpoint SCHEME:ID.")],
    price_percent: Annotated[
        str | None, _tolerance_option("--price-percent", "Unit price above the committed one, in percent.")
    ] = None,
    price_amount: Annotated[
        str | None, _tolerance_option("--price-amount", "Unit price above the committed one, as an amount.")
    ] = None,
    quantity_percent: Annotated[
        str | None, _tolerance_option("--quantity-percent", "Quantity beyond the ordered one, in percent.")
    ] = None,
    amount_percent: Annotated[
        str | None, _tolerance_option("--amount-percent", "Invoice amount beyond what remains, in percent.")
    ] = None,
    amount_amount: Annotated[
        str | None, _tolerance_option("--amount-amount", "Invoice amount beyond what remains, as an amount.")
    ] = None,
) -> None:
    """Set the default tolerances of the institution's commitments: those registered from now on
    without tolerances of their own take them. Replaces the defaults set before; with no option the
    defaults are exact again. A variance is within tolerance when it exceeds neither the percentage
    nor the amount that is set."""
    from einvoice.domain.commitments import Tolerances
    from einvoice.errors import NotFoundError
    from einvoice.services import accounts, commitments

    tolerances = Tolerances(
        price_percent=_tolerance(price_percent, "--price-percent"),
        price_amount=_tolerance(price_amount, "--price-amount"),
        quantity_percent=_tolerance(quantity_percent, "--quantity-percent"),
        amount_percent=_tolerance(amount_percent, "--amount-percent"),
        amount_amount=_tolerance(amount_amount, "--amount-amount"),
    )
    with opened() as uow_factory:
        try:
            institution = accounts.institution_by_endpoint(uow_factory(), endpoint)
            commitments.set_default_tolerances(uow_factory(), institution_id=institution.id, tolerances=tolerances)
        except accounts.AccountError as exc:
            raise _refused(exc) from None
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    shown = ", ".join(f"{k} {v}" for k, v in tolerances.to_dict().items() if v is not None) or "exact"
    typer.echo(f"institution {institution.id} ({institution.endpoint}): default tolerances {shown}")


@institutions_app.command("list")
def institutions_list(as_json: JsonOption = False) -> None:
    """List the registered institutions."""
    from einvoice.services import accounts

    with opened() as uow_factory:
        items = accounts.list_institutions(uow_factory())
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in items], indent=2))
    if not items:
        _say_empty("institutions")
    if as_json or not items:
        return
    from einvoice.cli.tables import Column, print_table

    print_table(
        [Column("id", identifier=True), Column("name"), Column("endpoint", identifier=True), Column("created")],
        [[i.id, i.name, i.endpoint, i.created_at.date().isoformat()] for i in items],
    )


@suppliers_app.command("add")
def suppliers_add(
    name: Annotated[str, typer.Option("--name", help="The supplier's name.")],
    endpoint: EndpointOption,
    vat: Annotated[str | None, typer.Option("--vat", help="VAT identifier (BT-31), e.g. NO123456785MVA.")] = None,
    legal_id: Annotated[str | None, typer.Option("--legal-id", help="Legal registration identifier (BT-30).")] = None,
    tax_id: Annotated[
        str | None, typer.Option("--tax-id", help="Tax registration identifier (BT-32, a tax scheme other than VAT).")
    ] = None,
    unchecked: UncheckedOption = False,
) -> None:
    """Register a supplier and print its new API key, once, on the last line. The endpoint and the VAT
    identifier are checked (Peppol EAS code list, check digits, country prefix) unless --unchecked.

    Every identifier an invoice states for its seller must then be the supplier's: the endpoint
    always; the VAT, tax and legal registration identifiers when registered here (and, when not,
    registered to no other supplier)."""
    from einvoice.services import accounts

    with opened() as uow_factory:
        try:
            supplier, api_key = accounts.add_supplier(
                uow_factory(),
                name=name,
                endpoint=endpoint,
                vat=vat,
                legal_id=legal_id,
                tax_id=tax_id,
                unchecked=unchecked,
            )
        except accounts.AccountError as exc:
            raise _refused_registration(exc) from None
    typer.echo(f"supplier {supplier.id}: {supplier.name} ({supplier.endpoint})")
    typer.echo("API key (shown only now; only its hash is stored):")
    typer.echo(api_key)


@suppliers_app.command("new-key")
def suppliers_new_key(supplier_id: Annotated[str, typer.Argument(help="The supplier's id.")]) -> None:
    """Replace a supplier's API key (the old one stops working) and print the new one on the last line."""
    from einvoice.errors import NotFoundError
    from einvoice.services import accounts

    with opened() as uow_factory:
        try:
            supplier, api_key = accounts.new_supplier_key(uow_factory(), supplier_id)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    typer.echo(f"supplier {supplier.id}: {supplier.name} ({supplier.endpoint})")
    typer.echo("new API key (shown only now; the old key no longer works):")
    typer.echo(api_key)


def _set_active(supplier_id: str, *, active: bool) -> None:
    from einvoice.errors import NotFoundError
    from einvoice.services import accounts

    with opened() as uow_factory:
        try:
            supplier = accounts.set_supplier_active(uow_factory(), supplier_id, active=active)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    typer.echo(f"supplier {supplier.id}: {supplier.name} {'active' if active else 'deactivated'}")


@suppliers_app.command("deactivate")
def suppliers_deactivate(supplier_id: Annotated[str, typer.Argument(help="The supplier's id.")]) -> None:
    """Stop a supplier's submissions: its API key is refused from now on."""
    _set_active(supplier_id, active=False)


@suppliers_app.command("activate")
def suppliers_activate(supplier_id: Annotated[str, typer.Argument(help="The supplier's id.")]) -> None:
    """Allow a deactivated supplier to submit again (with its current key)."""
    _set_active(supplier_id, active=True)


@suppliers_app.command("list")
def suppliers_list(as_json: JsonOption = False) -> None:
    """List the registered suppliers (never their keys)."""
    from einvoice.services import accounts

    with opened() as uow_factory:
        items = accounts.list_suppliers(uow_factory())
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in items], indent=2))
    if not items:
        _say_empty("suppliers")
    if as_json or not items:
        return
    from einvoice.cli.tables import Column, print_table

    print_table(
        [
            Column("id", identifier=True),
            Column("name"),
            Column("endpoint", identifier=True),
            Column("VAT id", identifier=True),
            Column("legal id", identifier=True),
            Column("active"),
        ],
        [[s.id, s.name, s.endpoint, s.vat_id or "", s.legal_id or "", "yes" if s.active else "no"] for s in items],
    )


@documents_app.command("show")
def documents_show(document_id: Annotated[str, typer.Argument(help="The document's id.")]) -> None:
    """Print a document with its history and findings as JSON."""
    from einvoice.errors import NotFoundError
    from einvoice.services import queries

    with opened() as uow_factory:
        try:
            view = queries.get_document(uow_factory(), document_id)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    typer.echo(json.dumps(view.to_dict(), indent=2, ensure_ascii=False))


@documents_app.command("retry")
def documents_retry(
    document_id: Annotated[str, typer.Argument(help="The id of a dead document.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the document's history.")] = None,
) -> None:
    """Send a dead document back to the stage it died in (once its cause is fixed). The running
    relay picks it up. A document that is not dead (sent back already, or moved on) is refused as
    a conflict."""
    import getpass

    from einvoice.errors import ConflictError, NotFoundError
    from einvoice.services import process

    with opened() as uow_factory:
        try:
            state = process.retry_dead(uow_factory, document_id, actor=f"admin:{getpass.getuser()}", reason=reason)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
        except ConflictError as exc:
            raise _refused(f"conflict: {exc}") from None
    typer.echo(f"document {document_id}: {state}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database schema (safe to run from several machines at once on PostgreSQL)."""
    from einvoice import store
    from einvoice.settings import get_settings

    settings = get_settings()
    engine = _engine(settings)
    try:
        before = store.current_revision(engine)
        store.migrate(engine, revision)
        after = store.current_revision(engine)
    except Exception as exc:
        typer.echo(f"error: migration failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_DATABASE) from None
    finally:
        engine.dispose()
    typer.echo(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))


def register(app: typer.Typer) -> None:
    app.add_typer(institutions_app, name="institutions")
    app.add_typer(suppliers_app, name="suppliers")
    app.add_typer(documents_app, name="documents")
    app.add_typer(db_app, name="db")
