"""``einvoice bench post``: how fast journal entries are built and delivered, and whether the
whole pipeline keeps up when documents run through to ``posted`` by pull.

- **build**: ``posting.build_entry`` over the generated invoices of the pipeline benchmark
  (parsed beforehand), entries per second on one core;
- **push**: the same entries sent by ``posting.push.PushSender`` to a loopback ERP on 127.0.0.1
  (``benchmarks.erp``: signature checked, applied once per key), ``--threads`` senders, entries per
  second;
- **pipeline to posted, by pull**: the pipeline benchmark (``benchmarks.pipeline.run_pipeline``)
  against a server started with posting on and the pull connector, while an ERP's posting job
  pulls ``GET /v1/erp/entries`` a page at a time and acknowledges each page (``--poll`` seconds
  between its runs when the last page was not full); then waits until every accepted
  document is ``posted`` and reports posted documents per second (from the clock's start to the
  last acknowledgement), the end-to-end latency from receipt to ``posted`` (read from the
  documents' histories), and entries pulled and acknowledged per second.

Whether the pipeline keeps up is read from the steady state (``steady_state``): the documents
posted per second while submissions go on, from ``SETTLE_SECONDS`` after the clock's start to the
last submission, and the latency from receipt to ``posted`` of the documents received in the first
third of the submissions against those of the last third. A pipeline that keeps up posts at the
offered rate and its latency stays flat; one that does not posts at its capacity and its latency
grows through the run. The rate to the last acknowledgement counts the latency of the last
documents as lost time: with the posting job's pause between runs (``--poll``), a pipeline of
unbounded capacity offered 100/s for 15 s shows about 97/s there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer

from einvoice.benchmarks import cpu
from einvoice.benchmarks.erp import LoopbackErp
from einvoice.benchmarks.pipeline import (
    BENCHMARK_BUYER_ENDPOINT,
    CURRENCIES,
    LocalServer,
    Target,
    _cpu_probe,
    _quantile,
    analyze_database,
    provision,
    random_invoice,
    run_pipeline,
    server_environment,
)

PROFILE = {
    "payable": "5310",
    "input_vat": {"25.5": "5721", "24": "5721", "14": "5722", "10": "5723"},
    "output_vat": "5790",
    "self_assessment_rate": "25.5",
    "rounding": "8690",
    "default_expense": "2239",
    "prepaid": "2390",
    "allowances": "spread",
    "accounting_currency": "EUR",
}
#: The pipeline's generated invoices are partly in SEK, without BT-111: a rate from before them.
RATES = "currency,date,rate\nSEK,2025-12-31,11.1500\n"
#: The contracts the generated invoices name in BT-10 (``Target.commitments``), 100 per currency
#: they come in (as ``bench pipeline --commitments`` registers: an invoice locks its contract while
#: it is matched and when its entry is confirmed, and one contract for all would make every
#: worker wait for the others), each large enough for every run: every invoice is approved.
CONTRACTS = {currency: [f"BENCH-{currency}-{n:03d}" for n in range(100)] for currency in sorted(set(CURRENCIES))}
CONTRACT_AMOUNT = "1000000000000.00"
#: The steady state is read from this long after the clock's start (``steady_state``): the
#: pipeline's first documents reach ``posted`` only after a round of the posting job.
SETTLE_SECONDS = 5.0


def build_and_push(count: int, threads: int, seed: int) -> dict[str, float]:
    """Entries per second built (one core) and pushed to a loopback ERP (``threads`` senders)."""
    from einvoice.domain.journal import PostingProfile
    from einvoice.parsers.ubl import parse_for_pipeline
    from einvoice.posting import build_entry
    from einvoice.posting.push import PushSender
    from einvoice.posting.rates import entry_rate

    rng = random.Random(seed)
    invoices = [
        parse_for_pipeline(
            random_invoice(rng, number=f"POST-{i}", seller_endpoint="0216:003720000006", seller_vat="FI20000006",
                           buyer_endpoint=BENCHMARK_BUYER_ENDPOINT)
        )
        for i in range(count)
    ]  # fmt: skip
    profile = PostingProfile.from_dict(PROFILE)
    sek = entry_rate(Decimal("11.15"), date(2025, 12, 31), "bench")
    started = time.perf_counter()
    entries = [
        build_entry(
            invoice,
            profile,
            document_id=f"{i:032x}",
            posting_date=date(2026, 12, 2),
            institution=BENCHMARK_BUYER_ENDPOINT,
            exchange_rate=sek if invoice.currency == "SEK" else None,
        ).to_dict()
        for i, invoice in enumerate(invoices)
    ]
    built = time.perf_counter() - started
    erp = LoopbackErp(b"bench secret")
    sender = PushSender(erp.url, secret=b"bench secret", timeout=30)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(sender.send, entries))
        pushed = time.perf_counter() - started
        applied = sum(erp.ledger.applied.values())
    finally:
        sender.close()
        erp.close()
    if applied != count:
        raise RuntimeError(f"the loopback ERP applied {applied} of {count} entries")
    return {"entries": count, "built_per_second": count / built, "pushed_per_second": count / pushed}


@dataclass
class Puller:
    """An ERP's posting job: pulls the feed a page (``page`` entries) at a time and acknowledges
    each page in one request (``batch``), or each entry with its own; after a page that was not
    full it waits ``poll`` seconds before pulling again, as a posting job scheduled to run every
    so often does."""

    url: str
    key: str
    batch: bool = True
    poll: float = 0.5
    page: int = 200
    acknowledged: int = 0
    requests: int = 0
    first_at: float | None = None
    last_at: float | None = None
    warmed_at: float | None = None  # when the warm-up's documents were all acknowledged
    warmup: int = 20

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="erp-puller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _acknowledged(self, count: int) -> None:
        now = time.perf_counter()
        self.first_at = self.first_at or now
        self.last_at = now
        if self.acknowledged < self.warmup <= self.acknowledged + count:
            self.warmed_at = now
        self.acknowledged += count

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as client:
            while not self._stop.is_set():
                after: str | None = None
                full = True
                while full and not self._stop.is_set():
                    params: dict[str, Any] = {"limit": self.page} | ({"after": after} if after else {})
                    page = client.get("/v1/erp/entries", params=params).json()
                    self.requests += 1
                    ids = [entry["id"] for entry in page["entries"]]
                    if ids and self.batch:
                        answer = client.post("/v1/erp/entries/ack", json={"ids": ids})
                        self.requests += 1
                        answer.raise_for_status()
                        self._acknowledged(sum(1 for a in answer.json()["entries"] if a["acknowledged"]))
                    for entry_id in ids if not self.batch else ():
                        client.post(f"/v1/erp/entries/{entry_id}/ack").raise_for_status()
                        self.requests += 1
                        self._acknowledged(1)
                    full = len(ids) == self.page
                    after = page["next"]
                self._stop.wait(self.poll)  # the posting job's next run


def register_contracts(uow_factory: Any, buyer: str, seller_endpoint: str) -> None:
    """The buyer's contracts with the bench's supplier that its invoices name (``CONTRACTS``)."""
    from einvoice.services import commitments
    from einvoice.services.accounts import registered_institution

    with uow_factory() as uow:
        institution_id = registered_institution(uow, buyer).id
    for currency, numbers in CONTRACTS.items():
        for number in numbers:
            data = commitments.CommitmentInput.model_validate(
                {
                    "number": number,
                    "kind": "contract",
                    "supplier": {"endpoint": seller_endpoint},
                    "currency": currency,
                    "amount": CONTRACT_AMOUNT,
                }
            )
            commitments.register(uow_factory(), data, institution_id=institution_id)


def served_pull(
    settings: Any,
    env: dict[str, str],
    *,
    rate: float,
    duration: float,
    workers: int,
    worker_nice: int,
    seed: int,
    batch: bool = True,
    poll: float = 0.5,
    worker_threads: int | None = None,
    validation_processes: int | None = None,
) -> dict[str, Any]:
    """The pipeline benchmark run through to ``posted`` by pull (see the module's text);
    ``worker_threads`` and ``validation_processes`` (None: the settings') for each worker process."""
    from einvoice.bootstrap import database_engine
    from einvoice.services import erp, posting
    from einvoice.store import uow_factory_for

    api_key, seller_endpoint, seller_vat, buyer = provision(settings)
    engine = database_engine(settings)
    uow_factory = uow_factory_for(engine)
    posting.set_posting_profile(uow_factory(), endpoint=buyer, data=PROFILE)
    posting.import_rates(uow_factory, RATES, source="bench")
    register_contracts(uow_factory, buyer, seller_endpoint)
    _, erp_key = erp.add_erp(uow_factory(), name=f"bench ERP {time.time_ns()}", endpoints=[buyer])
    env = env | {"EINVOICE_POSTING_ENABLED": "true", "EINVOICE_ERP_CONNECTOR": "pull"}
    if worker_threads is not None:
        env["EINVOICE_WORKER_THREADS"] = str(worker_threads)
    if validation_processes is not None:
        env["EINVOICE_VALIDATION_PROCESSES"] = str(validation_processes)
    server = LocalServer(env, workers=workers if settings.mode == "production" else 0, worker_nice=worker_nice)
    server.start()
    puller = Puller(server.url, erp_key, batch=batch, poll=poll)
    probe = _cpu_probe(server)
    readings: list[dict[str, float]] = []
    clock: list[float] = []  # when the pipeline's clock started (after its warm-up)
    clock_wall: list[datetime] = []  # the same, as the documents' times say it
    ended: dict[str, float] | None = None

    def reading() -> dict[str, float]:  # the pipeline's clock start (its first reading), kept for the end
        if not readings:
            clock.append(time.perf_counter())
            clock_wall.append(datetime.now(UTC))
        taken = probe() if probe is not None else {}
        readings.append(taken)
        return taken

    def until_posted(accepted: int) -> None:
        """Wait until the ERP has acknowledged every document (the warm-up's too), then read the CPU."""
        nonlocal ended
        deadline = time.monotonic() + 300
        while puller.acknowledged < accepted + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = probe() if probe is not None and readings else None

    try:
        puller.start()
        started = time.perf_counter()
        result = asyncio.run(
            run_pipeline(
                Target(
                    server.url,
                    api_key,
                    seller_endpoint,
                    seller_vat,
                    buyer,
                    commitments=CONTRACTS,
                ),
                rate=rate,
                count=int(rate * duration),
                duration=duration,
                seed=seed,
                warmup=20,
                cpu_probe=reading if probe is not None else None,
                after_warmup=lambda: analyze_database(settings),
                before_details=until_posted,
            )
        )
        accepted = result.accepted + 20  # the warm-up documents are posted too
        deadline = time.monotonic() + 300
        while puller.acknowledged < accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        times = _to_posted(uow_factory, buyer)
        statuses = _statuses(uow_factory, buyer)
    finally:
        puller.stop()
        server.stop()
        engine.dispose()
    # from the pipeline's clock start (after the warm-up and its ANALYZE) to the last acknowledgement
    begun = clock[0] if clock else started
    window = (puller.last_at or begun) - begun
    latencies = [(posted - received).total_seconds() for received, posted in times]
    steady = steady_state(times, clock_wall[0], result.submit_window) if clock_wall else {}
    return {
        "validation": result.to_dict(),
        "posted": puller.acknowledged,
        "accepted": accepted,
        "posted_per_second": (puller.acknowledged - 20) / window if window > 0 else None,
        "erp_requests": puller.requests,
        "pulled_and_acknowledged_per_second": puller.acknowledged
        / ((puller.last_at or 0) - (puller.first_at or 0) or 1),
        "to_posted_p50_s": _quantile(latencies, 0.5),
        "to_posted_p99_s": _quantile(latencies, 0.99),
        "statuses": statuses,
        **steady,
        # from the pipeline's clock start to the last acknowledgement, per document posted in it
        "cpu_per_posted": cpu.per_document(readings[0], ended, puller.acknowledged - 20) if ended else {},
    }


def _statuses(uow_factory: Any, buyer: str) -> dict[str, int]:
    """How many of the buyer's documents are in each state."""
    from sqlalchemy import func, select

    from einvoice.store.tables import DocumentRow

    with uow_factory() as uow:
        rows = uow.session.execute(
            select(DocumentRow.status, func.count())
            .where(DocumentRow.buyer_endpoint == buyer)
            .group_by(DocumentRow.status)
        ).all()
    return {status: count for status, count in sorted(rows)}


def _to_posted(uow_factory: Any, buyer: str) -> list[tuple[datetime, datetime]]:
    """When each of the buyer's posted documents was received and when it became ``posted``."""
    from sqlalchemy import select

    from einvoice.store.tables import DocumentRow, TransitionRow

    with uow_factory() as uow:
        rows = uow.session.execute(
            select(DocumentRow.received_at, TransitionRow.at)
            .join(TransitionRow, TransitionRow.document_id == DocumentRow.id)
            .where(TransitionRow.to_status == "posted", DocumentRow.buyer_endpoint == buyer)
        ).all()
    return [(received, posted) for received, posted in rows]


def steady_state(
    times: Sequence[tuple[datetime, datetime]], start: datetime, submit_window: float, settle: float = SETTLE_SECONDS
) -> dict[str, float | None]:
    """Whether the pipeline kept up, from each document's (received, posted) times, the clock's
    start and the seconds submissions went on for: ``steady_posted_per_second``, the documents
    posted from ``settle`` seconds after the start to the last submission, per second (None when
    the submissions were too short); ``to_posted_p50_first_third_s`` and
    ``to_posted_p50_last_third_s``, the median latency from receipt to ``posted`` of the
    documents received in the first and in the last third of the submissions."""
    end = start + timedelta(seconds=submit_window)
    steady: float | None = None
    if submit_window > settle:
        begin = start + timedelta(seconds=settle)
        steady = sum(1 for _, posted in times if begin <= posted <= end) / (submit_window - settle)
    third = timedelta(seconds=submit_window / 3)

    def median_latency(lo: datetime, hi: datetime) -> float | None:
        return _quantile([(p - r).total_seconds() for r, p in times if lo <= r < hi], 0.5)

    return {
        "steady_posted_per_second": steady,
        "to_posted_p50_first_third_s": median_latency(start, start + third),
        "to_posted_p50_last_third_s": median_latency(end - third, end + timedelta(microseconds=1)),
    }


def _steady_text(served: dict[str, Any]) -> str:
    """The steady state's figures (``steady_state``) as the bench prints them."""
    steady = served.get("steady_posted_per_second")
    rate = f"{steady:.1f} posted/s" if steady is not None else "no rate (submissions too short)"

    def sec(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else "-"

    return (
        f"steady state (from {SETTLE_SECONDS:g} s to the last submission): {rate}, receipt to posted p50 "
        f"{sec(served.get('to_posted_p50_first_third_s'))} in the first third of the submissions, "
        f"{sec(served.get('to_posted_p50_last_third_s'))} in the last"
    )


def bench_post(
    count: Annotated[int, typer.Option(min=1, help="Entries built and pushed.")] = 2000,
    threads: Annotated[int, typer.Option(min=1, help="Push senders.")] = 8,
    rate: Annotated[float, typer.Option(min=0.1, help="Pipeline: submissions per second.")] = 100.0,
    duration: Annotated[float, typer.Option(min=0, help="Pipeline: seconds of submissions (0: skip it).")] = 20.0,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Production mode: 'einvoice worker' processes (default: one per core).")
    ] = None,
    worker_nice: Annotated[int, typer.Option(min=0, max=19, help="Nice value of the worker processes.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the generated invoices.")] = 1,
    ack_batch: Annotated[
        bool,
        typer.Option(
            "--ack-batch/--ack-each",
            help="Pipeline: the posting job acknowledges a page in one request (POST /v1/erp/entries/ack), "
            "or each entry with its own.",
        ),
    ] = True,
    poll: Annotated[
        float,
        typer.Option(
            min=0,
            help="Pipeline: seconds the posting job waits after a page that was not full before it pulls again "
            "(a full page: at once).",
        ),
    ] = 0.5,
    worker_threads: Annotated[
        int | None,
        typer.Option(min=1, help="Pipeline: threads of each worker process (default: EINVOICE_WORKER_THREADS)."),
    ] = None,
    validation_processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Pipeline: validation subprocesses of each worker process (default: EINVOICE_VALIDATION_PROCESSES, "
            "else one per worker thread).",
        ),
    ] = None,
) -> None:
    """Journal entries built and pushed per second, and the pipeline from submission to posted by pull
    (documents posted per second, and the CPU per document posted of each process)."""
    from einvoice.settings import get_settings

    figures = build_and_push(count, threads, seed)
    typer.echo(
        f"build: {figures['built_per_second']:.0f} entries/s (one core); push to a loopback ERP, {threads} senders: "
        f"{figures['pushed_per_second']:.0f} entries/s ({count} entries, each applied once)"
    )
    if duration <= 0:
        return
    settings, env, scratch = server_environment(get_settings())
    try:
        processes = workers if workers is not None else (os.cpu_count() or 1)
        served = served_pull(
            settings,
            env,
            rate=rate,
            duration=duration,
            workers=processes,
            worker_nice=worker_nice,
            seed=seed,
            batch=ack_batch,
            poll=poll,
            worker_threads=worker_threads,
            validation_processes=validation_processes,
        )
    finally:
        if scratch is not None:
            with contextlib.suppress(OSError):
                scratch.cleanup()
    validation = served["validation"]
    threads = worker_threads or settings.worker_threads
    children = validation_processes or settings.validation_processes or threads
    shape = (
        f"{processes} worker process{'es' if processes > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}, "
        f"{children} validation subprocess"
        f"{'es' if children > 1 else ''} each"
        if settings.mode == "production"
        else "the queue in the server's process"
    )
    typer.echo(
        f"pipeline to posted by pull ({settings.mode}, {shape}): offered {rate:g}/s x {duration:g} s; "
        f"{served['posted']} of {served['accepted']} posted; "
        f"{served['posted_per_second'] or 0:.1f} documents/s posted; "
        f"{_steady_text(served)}; "
        f"through validation {validation.get('docs_per_second') or 0:.1f}/s; "
        f"receipt to posted p50 {served['to_posted_p50_s'] or 0:.2f} s, p99 {served['to_posted_p99_s'] or 0:.2f} s; "
        f"pull: {served['pulled_and_acknowledged_per_second'] or 0:.0f} entries/s pulled and acknowledged "
        f"({'a page per request' if ack_batch else 'one request per entry'}, {served['erp_requests']} requests, "
        f"{poll:g} s between runs); documents by state: "
        + ", ".join(f"{status} {count}" for status, count in served["statuses"].items())
    )
    if served["cpu_per_posted"]:
        parts = [f"{name} {1000 * seconds:.1f} ms" for name, seconds in served["cpu_per_posted"].items()]
        total = 1000 * sum(served["cpu_per_posted"].values())
        typer.echo(
            f"CPU per document posted (clock start to last acknowledgement; the ERP's posting job runs in "
            f"the bench): {', '.join(parts)}; total {total:.1f} ms"
        )
