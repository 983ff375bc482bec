"""Fault drills on the production path: a worker killed mid-stage, RabbitMQ restarted,
PostgreSQL restarted. Afterwards every accepted document is in a final or visible state, each
stage's effect recorded once. The servers are running again when each test ends."""

from __future__ import annotations

import time

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import queries
from tests.integration import test_pipeline_production
from tests.integration.pipeline_support import (
    assert_processed_once,
    corpus_invoice,
    restart_postgresql,
    start_rabbitmq,
    stop_rabbitmq,
    wait_for,
)
from tests.integration.test_pipeline_production import Production

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.disruptive]

production = test_pipeline_production.production  # the same fixture


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


def test_lost_message_after_a_killed_worker_is_resent_by_the_sweeper(production: Production) -> None:
    import subprocess
    from urllib.parse import unquote, urlparse

    doomed = production.start_worker("doomed", EINVOICE_FAULT_PAUSE="validate=600")
    doc = production.submit(corpus_invoice("LOST-1"))
    wait_for(production.uow_factory, [doc], states=frozenset({S.VALIDATING}), timeout=120)
    doomed.kill()
    # The unacknowledged message went back to the queue; lose it, as a broker failure might.
    vhost = unquote(urlparse(production.broker_url).path.lstrip("/")) or "/"
    subprocess.run(["rabbitmqctl", "-q", "purge_queue", "-p", vhost, "einvoice"], check=True, timeout=60)
    started = time.monotonic()
    production.start_worker("survivor")
    _check_all(production, [doc], timeout=180)
    assert time.monotonic() - started >= production.stuck_after_seconds / 2  # waited for the lease to run out
    view = queries.get_document(production.uow_factory(), doc)
    assert ("validating", "received", "sweeper") in [(t.from_status, t.to_status, t.actor) for t in view.history]


def test_rabbitmq_restart(production: Production) -> None:
    production.start_worker("worker-1")
    production.start_worker("worker-2")
    before = [production.submit(corpus_invoice(f"RMQ-{n}")) for n in range(4)]
    try:
        stop_rabbitmq()
        during = [production.submit(corpus_invoice(f"RMQ-down-{n}")) for n in range(3)]
        time.sleep(2)  # the relays fail to publish meanwhile
    finally:
        start_rabbitmq()
    after = [production.submit(corpus_invoice(f"RMQ-after-{n}")) for n in range(3)]
    _check_all(production, before + during + after)


def test_postgresql_restart(production: Production) -> None:
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
    restart_postgresql()
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
