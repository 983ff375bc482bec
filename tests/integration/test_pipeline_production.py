"""Production mode end to end: a fresh PostgreSQL database, a RabbitMQ virtual host of its own,
and real ``einvoice worker`` subprocesses (which also run the outbox relay and the sweeper)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from einvoice import store
from einvoice.domain.states import DocumentStatus as S
from einvoice.services import SupplierView, accounts, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.integration.databases import fresh_postgres_database
from tests.integration.pipeline_support import (
    BUYER_ENDPOINT,
    SELLER_ENDPOINT,
    SELLER_VAT,
    WorkerProcess,
    assert_processed_once,
    corpus_invoice,
    fresh_rabbitmq_vhost,
    register_contract,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@dataclass
class Production:
    database_url: str
    broker_url: str
    tmp: Path
    uow_factory: Callable[[], UnitOfWork]
    supplier: SupplierView
    stuck_after_seconds: int = 10
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "EINVOICE_MODE": "production",
            "EINVOICE_DATABASE_URL": self.database_url,
            "EINVOICE_BROKER_URL": self.broker_url,
            "EINVOICE_SIGNING_KEY_FILE": str(self.tmp / "receipt-key.pem"),
            "EINVOICE_DATA_DIR": str(self.tmp / "var"),
            "EINVOICE_STUCK_AFTER_SECONDS": str(self.stuck_after_seconds),
            "EINVOICE_LOG_LEVEL": "INFO",
        }

    def start_worker(self, name: str, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.tmp / f"{name}.log", extra_env=extra_env)
        self.workers.append(worker)
        return worker

    def submit(self, raw: bytes) -> str:
        settings = Settings(database_url=self.database_url)
        return submit_document(
            self.uow_factory, supplier=self.supplier, raw=raw, idempotency_key=None, settings=settings
        ).document.id

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.output()[-4000:]}" for w in self.workers)


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database on the server at ``postgres_url``."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture
def broker_url(rabbitmq_url: str) -> Iterator[str]:
    """A virtual host of its own on the server at ``rabbitmq_url``."""
    with fresh_rabbitmq_vhost(rabbitmq_url) as url:
        yield url


@pytest.fixture
def production(database_url: str, broker_url: str, tmp_path: Path) -> Iterator[Production]:
    engine = store.make_engine(database_url)
    uow_factory = store.uow_factory_for(engine)
    # the corpus sample's made-up identifiers
    buyer = accounts.add_institution(uow_factory(), name="Ministère", endpoint=BUYER_ENDPOINT, unchecked=True)
    supplier, _ = accounts.add_supplier(
        uow_factory(), name="Seller", endpoint=SELLER_ENDPOINT, vat=SELLER_VAT, unchecked=True
    )
    register_contract(uow_factory, buyer.id)
    env = Production(database_url, broker_url, tmp_path, uow_factory, supplier)
    try:
        yield env
    finally:
        for worker in env.workers:
            if worker.process.poll() is None:
                worker.stop()
        engine.dispose()


def test_worker_processes_take_documents_to_their_final_states(production: Production) -> None:
    workers = [production.start_worker("worker-1"), production.start_worker("worker-2")]
    good = [production.submit(corpus_invoice(f"P-{n}")) for n in range(6)]
    bad = production.submit(corpus_invoice("P-BAD", payable="1.00"))
    try:
        views = wait_for(production.uow_factory, [*good, bad], timeout=240)
    except AssertionError:
        print(production.logs())
        raise
    assert all(views[d].status == S.APPROVED for d in good), {d: views[d].status for d in good}
    assert views[bad].status == S.REJECTED
    for view in views.values():
        assert_processed_once(view)
    actors = {t.actor for v in views.values() for t in v.history}
    assert actors == {"api", "worker:validate", "worker:match"}
    with production.uow_factory() as uow:
        assert uow.outbox.pending_count() == 0
    assert queries.metrics(production.uow_factory()).documents_by_status == {"approved": 6, "rejected": 1}
    for worker in workers:
        assert worker.stop() == 0, production.logs()


def test_production_runtime_reports_ready(production: Production, monkeypatch: pytest.MonkeyPatch) -> None:
    from einvoice import bootstrap

    for name, value in production.env.items():
        monkeypatch.setenv(name, value)
    runtime = bootstrap.build()
    try:
        assert runtime.check_ready() == {"database": "ok", "broker": "ok", "artefacts": "ok"}
        runtime.start_background()
        # on PostgreSQL, the planner's statistics kept up where the server's autovacuum is off
        assert [p.name for p in runtime._pollers] == ["sweeper", "outbox-relay", "webhook-relay", "statistics-upkeep"]
    finally:
        runtime.stop()
    monkeypatch.setenv("EINVOICE_BROKER_URL", "amqp://guest:guest@127.0.0.1:1/")
    runtime = bootstrap.build()
    try:
        assert runtime.check_ready()["broker"].startswith("error:")
    finally:
        runtime.stop()
