"""Fault drills on the production path: a worker killed mid-stage, RabbitMQ restarted,
PostgreSQL restarted. Afterwards every accepted document is in a final or visible state, each
stage's effect recorded once. The servers are running again when each test ends.

The drills run against a PostgreSQL cluster and a RabbitMQ node this module starts for itself
(``private_servers``), never against the machine's shared ones, which other people and test runs
are using meanwhile: connections held to those across all the drills must still work afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import queries
from tests.conftest import POSTGRES_URL, RABBITMQ_URL, reachable
from tests.integration import test_pipeline_production
from tests.integration.databases import fresh_postgres_database
from tests.integration.pipeline_support import (
    assert_processed_once,
    corpus_invoice,
    fresh_rabbitmq_vhost,
    wait_for,
)
from tests.integration.private_servers import (
    ConnectionWatch,
    PrivatePostgres,
    PrivateRabbitMQ,
    private_postgres,
    private_rabbitmq,
)
from tests.integration.test_pipeline_production import Production

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

production = test_pipeline_production.production  # the same fixture, on this module's own servers


@pytest.fixture(scope="module", autouse=True)
def shared_servers_untouched() -> Iterator[None]:
    """Connections to the machine's servers (``EINVOICE_TEST_POSTGRES_URL``, ``EINVOICE_TEST_RABBITMQ_URL``),
    opened before the first drill and held across all of them, still work after the last: no
    drill stopped or restarted a server it did not start. A server that is not there is not watched."""
    watch = ConnectionWatch(
        POSTGRES_URL if reachable(POSTGRES_URL, 5432) else None,
        RABBITMQ_URL if reachable(RABBITMQ_URL, 5672) else None,
    )
    try:
        yield
        dropped = watch.dropped()
        assert not dropped, f"the drills cut connections to the machine's shared servers: {dropped}"
    finally:
        watch.close()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def rabbitmq_server() -> Iterator[PrivateRabbitMQ]:
    with private_rabbitmq() as server:
        yield server


@pytest.fixture
def database_url(postgres_server: PrivatePostgres) -> Iterator[str]:
    postgres_server.ensure_running()  # a drill that failed half-way may have left it stopped
    with fresh_postgres_database(postgres_server.url) as url:
        yield url


@pytest.fixture
def broker_url(rabbitmq_server: PrivateRabbitMQ) -> Iterator[str]:
    rabbitmq_server.ensure_running()
    with fresh_rabbitmq_vhost(rabbitmq_server.url, rabbitmq_server.ctl_command) as url:
        yield url


def _check_all(production: Production, ids: list[str], *, timeout: float = 300) -> None:
    try:
        views = wait_for(production.uow_factory, ids, timeout=timeout)
    except AssertionError:
        print(production.logs())
        raise
    assert all(v.status == S.APPROVED for v in views.values()), {k: v.status for k, v in views.items()}
    for view in views.values():
        assert_processed_once(view)
    with production.uow_factory() as uow:
        assert uow.outbox.pending_count() == 0


def test_worker_killed_mid_stage(production: Production) -> None:
    doomed = production.start_worker("doomed", EINVOICE_FAULT_PAUSE="validate=600")
    doc = production.submit(corpus_invoice("K-1"))
    wait_for(production.uow_factory, [doc], states=frozenset({S.VALIDATING}), timeout=120)
    doomed.kill()  # kill -9 while the stage holds the document
    assert queries.get_document(production.uow_factory(), doc).status == S.VALIDATING

    production.start_worker("survivor")
    _check_all(production, [doc])
    view = queries.get_document(production.uow_factory(), doc)
    assert [t.to_status for t in view.history].count("validated") == 1
    assert len(view.findings) == len({(f.rule, f.location) for f in view.findings})


def test_lost_message_after_a_killed_worker_is_resent_by_the_sweeper(
    production: Production, rabbitmq_server: PrivateRabbitMQ
) -> None:
    doomed = production.start_worker("doomed", EINVOICE_FAULT_PAUSE="validate=600")
    doc = production.submit(corpus_invoice("LOST-1"))
    wait_for(production.uow_factory, [doc], states=frozenset({S.VALIDATING}), timeout=120)
    doomed.kill()
    # The unacknowledged message went back to the queue; lose it, as a broker failure might.
    vhost = unquote(urlparse(production.broker_url).path.lstrip("/")) or "/"
    rabbitmq_server.ctl("-q", "purge_queue", "-p", vhost, "einvoice", timeout=60)
    started = time.monotonic()
    production.start_worker("survivor")
    _check_all(production, [doc], timeout=180)
    assert time.monotonic() - started >= production.stuck_after_seconds / 2  # waited for the lease to run out
    view = queries.get_document(production.uow_factory(), doc)
    assert ("validating", "received", "sweeper") in [(t.from_status, t.to_status, t.actor) for t in view.history]


def test_rabbitmq_restart(
    production: Production, postgres_server: PrivatePostgres, rabbitmq_server: PrivateRabbitMQ
) -> None:
    watch = ConnectionWatch(postgres_server.url, rabbitmq_server.url)
    production.start_worker("worker-1")
    production.start_worker("worker-2")
    before = [production.submit(corpus_invoice(f"RMQ-{n}")) for n in range(4)]
    try:
        rabbitmq_server.stop()  # the whole node, its process gone
        during = [production.submit(corpus_invoice(f"RMQ-down-{n}")) for n in range(3)]
        time.sleep(2)  # the relays fail to publish meanwhile
    finally:
        rabbitmq_server.start()
    after = [production.submit(corpus_invoice(f"RMQ-after-{n}")) for n in range(3)]
    _check_all(production, before + during + after)
    # The drill cut RabbitMQ's connections and only those (what the shared-server watch relies on).
    try:
        assert [d.split(" at ")[0] for d in watch.dropped()] == ["RabbitMQ"]
    finally:
        watch.close()


def test_postgresql_restart(
    production: Production, postgres_server: PrivatePostgres, rabbitmq_server: PrivateRabbitMQ
) -> None:
    watch = ConnectionWatch(postgres_server.url, rabbitmq_server.url)
    # worker-1 holds each document it validates for 3 s, so claims are open across the restart.
    production.start_worker("worker-1", EINVOICE_FAULT_PAUSE="validate=3")
    production.start_worker("worker-2")
    before = [production.submit(corpus_invoice(f"PG-{n}")) for n in range(4)]
    wait_for(
        production.uow_factory,
        before,
        states=frozenset(set(S) - {S.RECEIVED}),
        timeout=120,
    )
    postgres_server.restart()
    after = []
    for n in range(4):
        for _attempt in range(50):  # the test's own pool may still hold dead connections
            try:
                after.append(production.submit(corpus_invoice(f"PG-after-{n}")))
                break
            except Exception:
                time.sleep(0.2)
    assert len(after) == 4
    _check_all(production, before + after)
    try:
        assert [d.split(" at ")[0] for d in watch.dropped()] == ["PostgreSQL"]
    finally:
        watch.close()
