"""``einvoice bench match``: what matching costs per invoice against a large register on PostgreSQL.

The bench loads a fresh database with ``--commitments`` orders of ``--lines`` lines each (by
default 100,000 and 1,000,000) with ``COPY``, registers one institution and ``--suppliers``
suppliers, then takes ``--invoices`` generated invoices, each naming a random order (BT-13) and
some of its lines (BT-132) at the ordered price, through the real code: ``services.intake``
stores them, the VALIDATE stage runs with a validator that says "valid" (so that validation's
cost is left out; the parse to the EN 16931 model is real) and leaves them ``validated``, then the
MATCH stage runs for each on the pipeline's runner (``process.runner`` on a ``SqlUnitOfWork``):
the parsed document read, the supplier's history, the order locked ``FOR UPDATE`` with its lines,
the matcher, the reservation and the document's write, in one transaction.

Measured over the MATCH stage only, after a warm-up: CPU seconds per invoice of this process (the
engine's side: ``time.process_time``) and of the PostgreSQL backends of its connections (each
connection's backend pid, psycopg's ``info.backend_pid``, which is ``pg_backend_pid()``, read from
``/proc/<pid>/stat``: user + system time; only when the server runs on this machine), and the
stage's wall time per invoice (p50, p99, max).
"""

from __future__ import annotations

import io
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import typer

from einvoice.benchmarks.cpu import cpu_seconds
from einvoice.benchmarks.pipeline import BENCHMARK_BUYER_ENDPOINT, InvoiceLine, invoice_xml

#: Every bench order is valid through this year, and every invoice is issued in it.
YEAR = 2026
VAT_RATE = Decimal(24)
#: What each order line orders: far more than all the invoices of many runs take of it.
ORDERED = Decimal(100_000)
CENT = Decimal("0.01")
NUMBER = "BM-{:07d}"


def unit_price(commitment: int, line: int) -> Decimal:
    """The net unit price of line ``line`` (1-based) of order ``commitment``: 1.00 to 999.99, the
    same in every run, so that a run on a reused database knows the prices without reading them."""
    return Decimal(100 + (commitment * 7919 + line * 104_729) % 99_900) / 100


def supplier_endpoint(n: int) -> str:
    return f"0216:0037{n:08d}"


def supplier_vat(n: int) -> str:
    return f"FI{n:08d}"


# --- the register ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    """What a loaded bench database holds."""

    commitments: int
    lines: int
    suppliers: int


def _engine(url: str) -> Any:
    """An engine on ``url`` as the engine makes them (``bootstrap.database_engine``)."""
    from einvoice.bootstrap import database_engine
    from einvoice.settings import Settings

    return database_engine(Settings(database_url=url))


def _copy_text(values: Sequence[object]) -> str:
    """One row of ``COPY … FROM STDIN`` text: tab-separated, ``\\N`` for NULL (the bench's values
    hold no tab, newline or backslash)."""
    return "\t".join("\\N" if v is None else ("t" if v is True else "f" if v is False else str(v)) for v in values)


def _rows_of(columns: Sequence[str], given: Mapping[str, object]) -> list[object]:
    """``given`` in the order of ``columns``; KeyError names a column added to the table that the
    bench does not fill."""
    return [given[name] for name in columns]


def load_register(
    url: str,
    *,
    commitments: int,
    lines: int,
    suppliers: int,
    progress: Callable[[str], None],
    batch: int = 5_000,
) -> Register:
    """Migrate the empty database at ``url``, register the bench institution and suppliers, and
    ``COPY`` ``commitments`` orders of ``lines`` lines each into it, then ``ANALYZE``."""
    import psycopg

    from einvoice.services.accounts import add_institution, add_supplier
    from einvoice.store import migrate, uow_factory_for
    from einvoice.store.tables import CommitmentLineRow, CommitmentRow

    engine = _engine(url)
    try:
        migrate(engine)
        uow = uow_factory_for(engine)
        institution = add_institution(uow(), name="Bench Ministry", endpoint=BENCHMARK_BUYER_ENDPOINT, unchecked=True)
        supplier_ids = [
            add_supplier(
                uow(), name=f"Bench Supplier {n}", endpoint=supplier_endpoint(n), vat=supplier_vat(n), unchecked=True
            )[0].id
            for n in range(suppliers)
        ]
    finally:
        engine.dispose()

    header = [c.name for c in CommitmentRow.__table__.columns]
    line_columns = [c.name for c in CommitmentLineRow.__table__.columns]
    now = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    driver_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(driver_url) as connection, connection.cursor() as cursor:
        for first in range(0, commitments, batch):
            heads, bodies = io.StringIO(), io.StringIO()
            for i in range(first, min(first + batch, commitments)):
                commitment_id = uuid.uuid4().hex
                n = i % suppliers
                net = Decimal(0)
                for k in range(1, lines + 1):
                    price = unit_price(i, k)
                    net += (ORDERED * price).quantize(CENT, ROUND_HALF_UP)
                    line = {
                        "commitment_id": commitment_id,
                        "line_id": str(k),
                        "position": k - 1,
                        "quantity": ORDERED,
                        "unit_code": "C62",
                        "unit_price": price,
                        "description": f"Item {k} of order {i}",
                        "seller_item_id": f"SKU-{i}-{k}",
                        "standard_item_id": None,
                        "vat_category": "S",
                        "vat_rate": VAT_RATE,
                        "account": None,
                        "received": 0,
                        "invoiced": 0,
                    }
                    bodies.write(_copy_text(_rows_of(line_columns, line)) + "\n")
                head = {
                    "id": commitment_id,
                    "institution_id": institution.id,
                    "number": NUMBER.format(i),
                    "kind": "order",
                    "supplier_id": supplier_ids[n],
                    "supplier_endpoint": supplier_endpoint(n),
                    "supplier_vat": None,
                    "supplier_legal_id": None,
                    "currency": "EUR",
                    "valid_from": date(YEAR, 1, 1),
                    "valid_to": date(YEAR, 12, 31),
                    "budget_programme": None,
                    "budget_economic_code": None,
                    "account": None,
                    "receipt_required": False,
                    "amount": (net * (1 + VAT_RATE / 100)).quantize(CENT, ROUND_HALF_UP),
                    "price_percent": None,
                    "price_amount": None,
                    "quantity_percent": None,
                    "amount_percent": None,
                    "amount_amount": None,
                    "status": "open",
                    "reserved": "0.00",
                    "consumed": "0.00",
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                }
                heads.write(_copy_text(_rows_of(header, head)) + "\n")
            with cursor.copy(f"COPY commitments ({', '.join(header)}) FROM STDIN") as copy:
                copy.write(heads.getvalue())
            with cursor.copy(f"COPY commitment_lines ({', '.join(line_columns)}) FROM STDIN") as copy:
                copy.write(bodies.getvalue())
            connection.commit()
            done = min(first + batch, commitments)
            elapsed = time.perf_counter() - started
            progress(f"loaded {done:,} of {commitments:,} commitments ({done * lines:,} lines) in {elapsed:.0f} s")
        cursor.execute("ANALYZE")
        connection.commit()
    return Register(commitments, lines, suppliers)


def loaded_register(url: str) -> Register:
    """What the bench database at ``url`` holds (a ``--reuse`` run); LookupError when it holds no
    bench register."""
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as connection:
            commitments = connection.scalar(text("SELECT count(*) FROM commitments WHERE number LIKE 'BM-%'"))
            suppliers = connection.scalar(text("SELECT count(*) FROM suppliers WHERE name LIKE 'Bench Supplier %'"))
            lines = connection.scalar(
                text(
                    "SELECT count(*) FROM commitment_lines l JOIN commitments c ON c.id = l.commitment_id"
                    " WHERE c.number = :n"
                ),
                {"n": NUMBER.format(0)},
            )
    finally:
        engine.dispose()
    if not commitments or not suppliers or not lines:
        raise LookupError("no bench register in that database")
    return Register(int(commitments), int(lines), int(suppliers))


# --- the invoices ------------------------------------------------------------------------------


def bench_invoice(rng: random.Random, register: Register, *, number: str) -> tuple[int, bytes]:
    """An invoice of a random order's supplier naming the order (BT-13) and 1-5 of its lines
    (BT-132) at the ordered price, 1-9 of each; with the supplier's index."""
    i = rng.randrange(register.commitments)
    n = i % register.suppliers
    chosen = rng.sample(range(1, register.lines + 1), min(register.lines, rng.randint(1, 5)))
    lines = [
        InvoiceLine(
            f"Item {k} of order {i}", Decimal(rng.randint(1, 9)), unit_price(i, k), "S", VAT_RATE, order_line=str(k)
        )
        for k in chosen
    ]
    raw = invoice_xml(
        number=number,
        issue_date=date(YEAR, rng.randint(1, 12), rng.randint(1, 28)),
        seller_endpoint=supplier_endpoint(n),
        seller_vat=supplier_vat(n),
        buyer_endpoint=BENCHMARK_BUYER_ENDPOINT,
        order_reference=NUMBER.format(i),
        lines=lines,
    )
    return n, raw


@dataclass(frozen=True)
class ValidReport:
    """What the bench's validator says of every document: valid, without findings."""

    verdict: str = "valid"
    findings: tuple[Any, ...] = ()

    def rule_set(self) -> dict[str, Any]:
        return {"rules": "none: einvoice bench match takes every document as valid"}


def valid(raw: bytes, /, *, institution: str | None, at: datetime | None) -> ValidReport:
    return ValidReport()


# --- the backends' CPU -------------------------------------------------------------------------


class BackendCpu:
    """CPU seconds of the PostgreSQL backends of an engine's connections: each connection's
    backend pid is recorded when it opens, and calling the object sums their ``/proc/<pid>/stat``
    user + system time (None when none can be read: the server is on another machine)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.pids: set[int] = set()

        @event.listens_for(engine, "connect")
        def _record(dbapi_connection: Any, _: Any) -> None:
            self.pids.add(int(dbapi_connection.info.backend_pid))

    def __call__(self) -> dict[int, float]:
        return {pid: cpu for pid in self.pids if (cpu := cpu_seconds(pid)) is not None}


def _delta(before: dict[int, float], after: dict[int, float]) -> float | None:
    if not after:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Measured:
    """CPU seconds per invoice (this process; the PostgreSQL backends of its connections, None
    when not readable) and wall seconds per invoice (p50, p99, max) of one way of running."""

    engine_cpu: float
    database_cpu: float | None
    p50: float
    p99: float
    max: float

    @property
    def cpu(self) -> float:
        return self.engine_cpu + (self.database_cpu or 0.0)


@dataclass
class MatchBenchResult:
    """What one run measured; times in seconds. ``in_finish``: validation's finish with matching
    in it (how the pipeline runs it), ``without``: the same finish without matching, on as many
    other invoices, interleaved; ``alone``: the MATCH stage on its own for those other invoices
    (a message for the stage finding the document ``validated``)."""

    database: str
    register: Register
    invoices: int
    warmup: int
    outcomes: dict[str, int]
    reasons: dict[str, int]
    in_finish: Measured
    without: Measured
    alone: Measured
    load_average: list[float] = field(default_factory=list)

    @property
    def matching(self) -> Measured:
        """What matching adds to validation's finish: ``in_finish`` less ``without`` (the wall
        times are ``in_finish``'s)."""
        database = None
        if self.in_finish.database_cpu is not None and self.without.database_cpu is not None:
            database = self.in_finish.database_cpu - self.without.database_cpu
        return Measured(
            self.in_finish.engine_cpu - self.without.engine_cpu,
            database,
            self.in_finish.p50,
            self.in_finish.p99,
            self.in_finish.max,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["register"] = dict(self.register.__dict__)
        for name in ("in_finish", "without", "alone"):
            data[name] = dict(getattr(self, name).__dict__)
        data["matching"] = dict(self.matching.__dict__)
        return data

    def to_text(self) -> str:
        def ms(value: float | None) -> str:
            return "not measured" if value is None else f"{value * 1000:.2f} ms"

        def cpu(m: Measured) -> str:
            return f"engine {ms(m.engine_cpu)} + PostgreSQL {ms(m.database_cpu)} = {ms(m.cpu)}"

        def wall(m: Measured) -> str:
            return f"p50 {ms(m.p50)}, p99 {ms(m.p99)}, max {ms(m.max)}"

        register = self.register
        return "\n".join(
            [
                f"register: {register.commitments:,} commitments, {register.commitments * register.lines:,} lines, "
                f"{register.suppliers} suppliers (database {self.database})",
                f"invoices: {self.invoices:,} matched in validation's finish and {self.invoices:,} by the MATCH stage "
                f"on its own, after {self.warmup} warm-up; outcomes {self.outcomes}"
                + (f"; reasons {self.reasons}" if self.reasons else ""),
                "validation: none (a validator that says valid: what is measured is matching; the parse is real)",
                "CPU per invoice:",
                f"  matching, in validation's finish (what it adds to the finish): {cpu(self.matching)}",
                f"    validation's finish with matching {cpu(self.in_finish)}; without {cpu(self.without)}",
                f"  the MATCH stage on its own: {cpu(self.alone)}",
                "wall time per invoice:",
                f"  validation's finish with matching: {wall(self.in_finish)}; without: {wall(self.without)}",
                f"  the MATCH stage on its own: {wall(self.alone)}",
                f"load average: {self.load_average}",
            ]
        )


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Timed:
    """Per-call wall and CPU time of this process, and the CPU of an engine's backends."""

    def __init__(self, engine: Any) -> None:
        self.backends = BackendCpu(engine)
        self.walls: list[float] = []
        self.cpu = 0.0
        self.started: dict[int, float] = {}

    def begin(self) -> None:
        self.started = self.backends()

    def __call__(self, work: Callable[..., object], *args: object) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        work(*args)
        self.walls.append(time.perf_counter() - wall)
        self.cpu += time.process_time() - cpu

    def measured(self) -> Measured:
        database = _delta(self.started, self.backends())
        n = len(self.walls)
        return Measured(
            self.cpu / n,
            database / n if database is not None else None,
            statistics.median(self.walls),
            _quantile(self.walls, 0.99),
            max(self.walls),
        )


def run_match_bench(
    url: str, register: Register, *, invoices: int, warmup: int, seed: int, progress: Callable[[str], None]
) -> MatchBenchResult:
    """Submit twice ``warmup + invoices`` generated invoices, then, interleaved, take one half
    through validation's finish with matching in it and the other through validation's finish
    without (a validator that says valid), then the MATCH stage on its own for the second half;
    each half on an engine of its own, so that its PostgreSQL backends are its own. The warm-up
    invoices of each half go first, unmeasured, after the statistics upkeep of a served engine
    (``store.statistics``) has analyzed the tables the invoices filled."""
    from sqlalchemy import text

    from einvoice.parsers.ubl import parse_for_pipeline
    from einvoice.services import accounts, process
    from einvoice.services.intake import submit_document
    from einvoice.settings import get_settings
    from einvoice.store import uow_factory_for
    from einvoice.store.statistics import analyze_stale
    from einvoice.store.tables import Base

    settings = get_settings()
    engines = [_engine(url), _engine(url)]
    timed = [_Timed(engine) for engine in engines]
    try:
        factories = [uow_factory_for(engine) for engine in engines]
        views = {s.endpoint: s for s in accounts.list_suppliers(factories[0]())}
        suppliers = [views[supplier_endpoint(n)] for n in range(register.suppliers)]
        rng = random.Random(seed)
        tag = uuid.uuid4().hex[:8]
        ids = []
        total = 2 * (warmup + invoices)
        for count in range(total):
            n, raw = bench_invoice(rng, register, number=f"BMI-{tag}-{count}")
            outcome = submit_document(
                factories[0], supplier=suppliers[n], raw=raw, idempotency_key=None, settings=settings
            )
            ids.append(outcome.document.id)
            if (count + 1) % 500 == 0:
                progress(f"submitted {count + 1:,} of {total:,} invoices")
        # What the served processes' statistics upkeep would have done while they arrived, where
        # the server's autovacuum is off: plans made for the tables as they are now.
        analyze_stale(engines[0], Base.metadata.tables)
        ports = process.Ports(validator=valid, parser=parse_for_pipeline)
        chained = process.runner(factories[0], ports, chain=True)
        alone = process.runner(factories[1], ports, chain=False)
        matched, other = ids[0::2], ids[1::2]
        for document_id in matched[:warmup]:
            chained.run(process.VALIDATE.name, document_id)
        for document_id in other[:warmup]:
            alone.run(process.VALIDATE.name, document_id)
            alone.run(process.MATCH.name, document_id)
        progress(f"validating {2 * invoices:,} invoices, every other one matched in the finish …")
        for t in timed:
            t.begin()
        for count, (one, two) in enumerate(zip(matched[warmup:], other[warmup:], strict=True)):
            timed[0](chained.run, process.VALIDATE.name, one)
            timed[1](alone.run, process.VALIDATE.name, two)
            if (count + 1) % 500 == 0:
                progress(f"{count + 1:,} of {invoices:,}")
        in_finish, without = timed[0].measured(), timed[1].measured()
        progress(f"the MATCH stage on its own for {invoices:,} invoices …")
        stage = _Timed(engines[1])
        stage.backends.pids = timed[1].backends.pids
        stage.begin()
        for document_id in other[warmup:]:
            stage(alone.run, process.MATCH.name, document_id)
        on_its_own = stage.measured()
        with engines[0].connect() as connection:
            rows = connection.execute(
                text("SELECT status, match_result FROM documents WHERE id = ANY(:ids)"),
                {"ids": matched[warmup:] + other[warmup:]},
            ).all()
    finally:
        for engine in engines:
            engine.dispose()
    outcomes: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for status, match_result in rows:
        outcomes[status] = outcomes.get(status, 0) + 1
        result = json.loads(match_result) if isinstance(match_result, str) else match_result or {}
        for reason in result.get("reasons", ()):
            reasons[reason["code"]] = reasons.get(reason["code"], 0) + 1
    return MatchBenchResult(
        database=url.rsplit("/", 1)[-1],
        register=register,
        invoices=invoices,
        warmup=warmup,
        outcomes=outcomes,
        reasons=reasons,
        in_finish=in_finish,
        without=without,
        alone=on_its_own,
        load_average=[round(x, 2) for x in os.getloadavg()],
    )


# --- the database and the command ----------------------------------------------------------------


@contextmanager
def bench_database(server_url: str, *, reuse: str | None, keep: bool) -> Iterator[tuple[str, bool]]:
    """The database to run in, on the server of ``server_url``: ``reuse`` (kept by an earlier
    run), or a fresh ``einvoice_bench_match_<random>``, dropped afterwards unless ``keep``. Yields
    its URL and whether it is fresh."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if reuse is not None:
        yield url.set(database=reuse).render_as_string(hide_password=False), False
        return
    name = f"einvoice_bench_match_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False), True
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_match(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server (any database on it): the bench creates a database of its own there. "
            "Default: EINVOICE_DATABASE_URL."
        ),
    ] = None,
    commitments: Annotated[int, typer.Option(min=1, help="Orders to load.")] = 100_000,
    lines: Annotated[int, typer.Option(min=1, max=1000, help="Lines per order.")] = 10,
    suppliers: Annotated[int, typer.Option(min=1, help="Suppliers the orders are spread over.")] = 100,
    invoices: Annotated[int, typer.Option(min=1, help="Invoices matched and measured.")] = 2_000,
    warmup: Annotated[int, typer.Option(min=0, help="Invoices matched before the clock starts.")] = 200,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the loaded database (its name is printed) for --reuse.")
    ] = False,
    reuse: Annotated[
        str | None, typer.Option(help="Run in this database, loaded by an earlier --keep run, instead of loading one.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the invoices.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Load COMMITMENTS orders of LINES lines into a fresh PostgreSQL database, then match generated
    invoices through the stages (validation replaced by a validator that says valid): INVOICES in
    validation's finish, against as many through the same finish without matching, and as many by
    the MATCH stage on its own; print CPU per invoice of the engine and of its PostgreSQL backends,
    and p50/p99 wall times."""
    from einvoice.settings import get_settings

    server = database_url or get_settings().effective_database_url
    if not server.startswith("postgresql"):
        raise typer.BadParameter("a PostgreSQL URL is needed (--database-url or EINVOICE_DATABASE_URL)")

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    with bench_database(server, reuse=reuse, keep=keep) as (url, fresh):
        if fresh:
            register = load_register(url, commitments=commitments, lines=lines, suppliers=suppliers, progress=progress)
        else:
            try:
                register = loaded_register(url)
            except LookupError as exc:
                raise typer.BadParameter(f"--reuse {reuse}: {exc}") from None
            progress(f"reusing {reuse}: {register.commitments:,} commitments of {register.lines} lines")
        result = run_match_bench(url, register, invoices=invoices, warmup=warmup, seed=seed, progress=progress)
        if keep and fresh:
            progress(f"kept the database: --reuse {url.rsplit('/', 1)[-1]}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        typer.echo(result.to_text())
