"""``einvoice bench review``: the accountants' queue page with a large queue.

Loads a queue into a scratch database (bulk inserts: documents waiting for a person, each with
the reasons its match result names, and documents done with, as a live database has them),
signs a user in to the pages, and times ``GET /ui/queue`` for each query shape (the default view,
each filter, each sort, a deep page) through the ASGI app in this process: the server's time for
a page, database, template and all, without a network between. Prints p50 and p95 per shape.

The scratch database is created on the server of ``--database-url`` (PostgreSQL) and dropped
afterwards, or is a temporary SQLite file when no URL is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from sqlalchemy import Engine, func, insert, select, text

from einvoice.domain.commitments import ReasonCode, WarningCode
from einvoice.domain.states import DocumentStatus as S

#: The reasons a loaded document waits for, and how often (one or two per document).
REASONS = (
    ReasonCode.PRICE_VARIANCE,
    ReasonCode.NO_COMMITMENT,
    ReasonCode.QUANTITY_EXCEEDS_RECEIVED,
    ReasonCode.AMOUNT_EXCEEDS_REMAINING,
    ReasonCode.LINE_UNMATCHED,
    ReasonCode.SUSPECTED_DUPLICATE,
    WarningCode.AMOUNT_ANOMALY,
)
#: States of the queue (most documents in ``exception``) and of documents done with.
WAITING = ((S.EXCEPTION, 85), (S.MATCHED, 5), (S.UNDER_QUERY, 6), (S.AWAITING_SECOND_APPROVAL, 4))
DONE = (S.POSTED, S.APPROVED, S.REJECTED)
PASSWORD = "bench-review-password"  # noqa: S105 - the scratch database's only user


@dataclass(frozen=True)
class Loaded:
    institutions: list[str]  # ids
    suppliers: list[tuple[str, str]]  # (id, name)
    waiting: int
    done: int


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_queue(
    engine: Engine,
    *,
    waiting: int,
    done: int = 0,
    institutions: int = 20,
    suppliers: int = 500,
    seed: int = 1,
    now: datetime | None = None,
) -> Loaded:
    """Insert ``institutions`` institutions, ``suppliers`` suppliers, ``waiting`` documents waiting
    for a person (with their reasons in ``document_reasons`` and their match result) and ``done``
    documents done with, in bulk. Deterministic for a ``seed``."""
    from einvoice.store.tables import DocumentReasonRow, DocumentRow, InstitutionRow, SupplierRow

    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    institution_rows = [
        {
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "name": f"Institution {n:03d}",
            "endpoint_scheme": "0216",
            "endpoint_id": f"0037{n:08d}",
            "created_at": now,
        }
        for n in range(institutions)
    ]
    supplier_rows = [
        {
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "name": f"{rng.choice(['Acme', 'Nordic', 'Baltic', 'Metro', 'Polar'])} Supplier {n:04d}",
            "endpoint_scheme": "0216",
            "endpoint_id": f"0038{n:08d}",
            "api_key_hash": uuid.UUID(int=rng.getrandbits(128)).hex * 2,
            "active": True,
            "created_at": now,
        }
        for n in range(suppliers)
    ]
    states = [s for s, weight in WAITING for _ in range(weight)]

    def documents(count: int, queue: bool, reasons: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for n in range(count):
            document_id = uuid.UUID(int=rng.getrandbits(128)).hex
            institution = rng.choice(institution_rows)
            supplier = rng.choice(supplier_rows)
            received = now - timedelta(minutes=rng.randint(1, 60 * 24 * 120))
            issued = (received - timedelta(days=rng.randint(0, 10))).date()
            number = f"INV-{n:07d}"
            amount = Decimal(rng.randint(100, 5_000_000)) / 100
            codes = rng.sample(REASONS, rng.choice((1, 1, 1, 2))) if queue else []
            reasons.extend({"document_id": document_id, "code": code} for code in codes)
            result = {
                "outcome": "exception" if codes else "matched",
                "commitment": f"PO-{rng.randint(1, 99_999):05d}",
                "reasons": [{"code": code, "message": code.lower().replace("_", " ")} for code in codes],
                "warnings": [],
                "lines": [],
                "reserved": None,
            }
            yield {
                "id": document_id,
                "supplier_id": supplier["id"],
                "institution_id": institution["id"],
                "status": rng.choice(states) if queue else rng.choice(DONE),
                "sha256": document_id * 2,
                "size": rng.randint(4_000, 40_000),
                "document_type": "invoice",
                "number": number,
                "issue_date": issued,
                "issue_year": issued.year,
                "number_key": f"{supplier['id']}:{issued.year}:{number}",
                "currency": "EUR",
                "payable_amount": amount,
                "seller_endpoint": f"0216:{supplier['endpoint_id']}",
                "buyer_endpoint": f"0216:{institution['endpoint_id']}",
                "match_result": json.dumps(result),
                "received_at": received,
                "status_changed_at": received + timedelta(minutes=rng.randint(0, 30)),
            }

    with engine.begin() as connection:
        connection.execute(insert(InstitutionRow), institution_rows)
        connection.execute(insert(SupplierRow), supplier_rows)
        for queue, count in ((True, waiting), (False, done)):
            reasons: list[dict[str, Any]] = []
            for chunk in _chunks(documents(count, queue, reasons), 5_000):
                connection.execute(insert(DocumentRow), chunk)
                if reasons:
                    connection.execute(insert(DocumentReasonRow), reasons)
                    reasons.clear()
    with engine.connect() as connection:  # as autovacuum leaves a live database: statistics, visibility map
        vacuum = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(vacuum))
    return Loaded(
        [str(i["id"]) for i in institution_rows], [(str(s["id"]), str(s["name"])) for s in supplier_rows], waiting, done
    )


def middle_cursor(engine: Engine) -> str:
    """The cursor of the row in the middle of the default view (longest waiting first)."""
    from einvoice.domain.review import cursor_of
    from einvoice.store.tables import REVIEW_PREDICATE, DocumentRow

    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(DocumentRow).where(text(REVIEW_PREDICATE)))
        middle = int(count.scalar() or 0) // 2
        at, document_id = connection.execute(
            select(DocumentRow.status_changed_at, DocumentRow.id)
            .where(text(REVIEW_PREDICATE))
            .order_by(DocumentRow.status_changed_at.desc(), DocumentRow.id.desc())
            .offset(middle)
            .limit(1)
        ).one()
    return cursor_of(at, document_id)


def query_shapes(loaded: Loaded, middle: str) -> dict[str, str]:
    """The queue URLs timed, by shape: the default view, each filter, each sort, a page in the
    middle of the queue (by its cursor, as the next and previous links go)."""
    supplier_name = loaded.suppliers[0][1]
    return {
        "default (age, page 1)": "",
        "middle page (next link)": "page=1001&" + urlencode({"after": middle}),
        "middle page (previous link)": "page=1000&" + urlencode({"before": middle}),
        "filter institution": f"institution={loaded.institutions[0]}",
        "filter reason": f"reason={ReasonCode.PRICE_VARIANCE}",
        "filter supplier": f"supplier={supplier_name.replace(' ', '+')}",
        "filter age >= 30 d": "min_age_days=30",
        "filter amount range": "min_amount=1000&max_amount=2000",
        "filter status": "status=under_query",
        "all filters, by amount": (
            f"institution={loaded.institutions[1]}&reason={ReasonCode.NO_COMMITMENT}&min_amount=100"
            "&max_amount=40000&min_age_days=7&status=exception&sort=amount&order=desc"
        ),
        "sort amount": "sort=amount&order=asc",
        "sort issue date": "sort=issue_date&order=desc",
        "sort number": "sort=number&order=asc",
        "sort supplier": "sort=supplier&order=asc",
        "sort institution": "sort=institution&order=asc",
    }


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def time_pages(get: Callable[[str], Any], shapes: dict[str, str], *, rounds: int) -> dict[str, dict[str, Any]]:
    """Each shape's page ``rounds`` times (after one untimed request): ms p50, p95, and the rows
    it found. ``get(query)`` requests ``/ui/queue?query``."""
    figures: dict[str, dict[str, Any]] = {}
    for name, query in shapes.items():
        first = get(query)
        if first.status_code != 200:
            raise RuntimeError(f"{name}: /ui/queue?{query} answered {first.status_code}")
        found = first.text.split('class="summary">', 1)[-1].split(" document", 1)[0]
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            get(query)
            times.append((time.perf_counter() - started) * 1000)
        figures[name] = {
            "query": query,
            "found": found,
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
        }
    return figures


def time_counts(engine: Engine, institution_ids: list[str], *, rounds: int) -> dict[str, float]:
    """The queue's counts by reason and by institution, counted afresh (what a page pays once
    every ``EINVOICE_UI_QUEUE_COUNTS_SECONDS``): ms p50 and p95."""
    from einvoice.store import uow_factory_for

    uow_factory = uow_factory_for(engine)
    times = []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        with uow_factory() as uow:
            uow.review.counts(institution_ids=institution_ids)
        times.append((time.perf_counter() - started) * 1000)
    times = times[1:]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1)}


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A new, empty database: ``einvoice_bench_<random>`` on the PostgreSQL server of
    ``server_url`` (dropped afterwards), or a temporary SQLite file when None."""
    if server_url is None:
        with tempfile.TemporaryDirectory(prefix="einvoice-bench-review-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if not url.drivername.startswith("postgresql"):
        raise typer.BadParameter("--database-url: a PostgreSQL server (postgresql+psycopg://…)")
    name = f"einvoice_bench_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(database_url: str, *, waiting: int, done: int, rounds: int, seed: int) -> dict[str, Any]:
    """Load the queue into the (empty) database at ``database_url`` and time the pages."""
    from fastapi.testclient import TestClient

    from einvoice.api import create_app
    from einvoice.bootstrap import build, database_engine
    from einvoice.services import users
    from einvoice.settings import Settings
    from einvoice.store import migrate

    with tempfile.TemporaryDirectory(prefix="einvoice-bench-review-") as folder:
        settings = Settings(data_dir=Path(folder), database_url=database_url, mode="embedded")
        engine = database_engine(settings)
        try:
            migrate(engine)
            started = time.perf_counter()
            loaded = load_queue(engine, waiting=waiting, done=done, seed=seed)
            load_s = time.perf_counter() - started
            middle = middle_cursor(engine)
            counts_ms = time_counts(engine, loaded.institutions, rounds=max(3, rounds // 3))
        finally:
            engine.dispose()
        runtime = build(settings)
        try:
            endpoints = [f"0216:0037{n:08d}" for n in range(len(loaded.institutions))]
            users.add_user(
                runtime.uow_factory(), username="bench", role="approver", institutions=endpoints, password=PASSWORD
            )
            with TestClient(create_app(runtime), follow_redirects=False) as client:  # type: ignore[arg-type]
                form = client.get("/ui/sign-in").text
                token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                signed = client.post(
                    "/ui/sign-in", data={"username": "bench", "password": PASSWORD, "csrf_token": token}
                )
                if signed.status_code != 303:
                    raise RuntimeError(f"sign-in answered {signed.status_code}")
                figures = time_pages(
                    lambda q: client.get(f"/ui/queue?{q}"), query_shapes(loaded, middle), rounds=rounds
                )
        finally:
            runtime.stop()
    return {
        "database": database_url.split(":", 1)[0],
        "waiting": waiting,
        "done": done,
        "institutions": len(loaded.institutions),
        "suppliers": len(loaded.suppliers),
        "load_s": round(load_s, 1),
        "rounds": rounds,
        "pages": figures,
        "counts_uncached_ms": counts_ms,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "date": date.today().isoformat(),
    }


def bench_review(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server (postgresql+psycopg://user@host/db): a scratch database is created "
            "on it and dropped afterwards. Default: a temporary SQLite file."
        ),
    ] = None,
    documents: Annotated[int, typer.Option(min=1, help="Documents waiting for a person.")] = 100_000,
    done: Annotated[int, typer.Option(min=0, help="Documents done with (posted, approved, rejected).")] = 50_000,
    rounds: Annotated[int, typer.Option(min=1, help="Requests timed per query shape.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the generated queue.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Time the queue page (/ui/queue) with a large queue: server time per page, p50 and p95, per
    query shape (default view, each filter, each sort, a deep page)."""
    with scratch_database(database_url) as url:
        result = run(url, waiting=documents, done=done, rounds=rounds, seed=seed)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    typer.echo(
        f"queue of {result['waiting']:,} documents waiting (+{result['done']:,} done), {result['institutions']} "
        f"institutions, {result['suppliers']} suppliers, on {result['database']}; loaded in {result['load_s']} s; "
        f"{rounds} requests per shape"
    )
    typer.echo(f"{'shape':<28} {'found':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for name, figures in result["pages"].items():
        typer.echo(f"{name:<28} {figures['found']:>9} {figures['p50_ms']:>8} {figures['p95_ms']:>8}")
    counts = result["counts_uncached_ms"]
    typer.echo(
        f"{'counts, counted afresh':<28} {'':>9} {counts['p50_ms']:>8} {counts['p95_ms']:>8}"
        "   (once per EINVOICE_UI_QUEUE_COUNTS_SECONDS per set of institutions)"
    )
    typer.echo(f"machine: {result['machine']}; {result['date']}")
