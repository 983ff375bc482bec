"""Actors, relay and runtime on in-memory SQLite and dramatiq's StubBroker.

The test thread and the worker thread never touch the database at the same time (the test
relays, then waits in ``broker.join``), as in-memory SQLite has a single connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from einvoice import bootstrap, messaging
from einvoice.domain.findings import Finding
from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import TransientError
from einvoice.services import accounts, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from tests.unit.services import documents


@dataclass
class Report:
    verdict: str
    findings: tuple[Finding, ...] = ()

    def rule_set(self) -> dict[str, object]:
        return {"rules": "peppol-bis3", "rules_version": "2026.5"}


def valid(raw: bytes, **context: object) -> Report:
    return Report("valid")


def broken(raw: bytes, **context: object) -> Report:
    raise TransientError("validator unavailable")


SECRET = "IBAN LV80BANK0000435195001"


def quoting(raw: bytes, **context: object) -> Report:
    """An engine error that quotes a value of the document, as Saxon's conversion errors do."""
    raise ValueError(f'Cannot convert string "{SECRET}" to xs:decimal at /Invoice/cbc:Note[1]')


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> Iterator[bootstrap.Runtime]:
    validator = getattr(request, "param", valid)
    settings = Settings(database_url="sqlite://", broker_url=None, max_retries=1, workers_in_process=0)
    runtime = bootstrap.build(settings, validator=validator, migrate=True)
    yield runtime
    runtime.stop()


def run_pipeline(runtime: bootstrap.Runtime) -> None:
    """Relay and let one worker thread consume until nothing is left to do."""
    import dramatiq

    worker = dramatiq.Worker(runtime.broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        while runtime.relay.drain():
            runtime.broker.join(messaging.QUEUE, fail_fast=False, timeout=20_000)  # type: ignore[attr-defined]
    finally:
        worker.stop()


def submit(runtime: bootstrap.Runtime, number: str = "INV-1") -> str:
    accounts_added = accounts.list_institutions(runtime.uow_factory())
    if not accounts_added:
        accounts.add_institution(runtime.uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT)
    supplier = next(iter(accounts.list_suppliers(runtime.uow_factory())), None)
    if supplier is None:
        supplier, _ = accounts.add_supplier(runtime.uow_factory(), name="Acme", endpoint=documents.SELLER_ENDPOINT)
        institution = accounts.list_institutions(runtime.uow_factory())[0]
        documents.register_contract(runtime.uow_factory, institution.id)
    return submit_document(
        runtime.uow_factory,
        supplier=supplier,
        raw=documents.invoice(number),
        idempotency_key=None,
        settings=runtime.settings,
    ).document.id


def test_submitted_document_flows_through_broker_and_actors(runtime: bootstrap.Runtime) -> None:
    doc = submit(runtime)
    run_pipeline(runtime)
    view = queries.get_document(runtime.uow_factory(), doc)
    assert view.status == S.APPROVED
    assert [t.actor for t in view.history] == ["api"] + ["worker:validate"] * 2 + ["worker:match"] * 3


def test_calling_an_actor_twice_changes_nothing(runtime: bootstrap.Runtime) -> None:
    doc = submit(runtime)
    runtime.actors["validate_document"].fn(doc)
    after_first = queries.get_document(runtime.uow_factory(), doc)
    runtime.actors["validate_document"].fn(doc)
    assert queries.get_document(runtime.uow_factory(), doc) == after_first
    assert after_first.status == S.APPROVED  # the validate actor carries a valid document on through matching
    runtime.actors["match_document"].fn(doc)
    runtime.actors["match_document"].fn(doc)
    runtime.actors["post_document"].fn(doc)
    view = queries.get_document(runtime.uow_factory(), doc)
    assert view.status == S.APPROVED
    assert len(view.history) == 6


def test_validation_not_chained_with_matching_leaves_matching_a_message(runtime: bootstrap.Runtime) -> None:
    from einvoice.services import process

    doc = submit(runtime)
    # As a fault drill runs it (each stage in its own write), then the worker died.
    process.validate_document(runtime.uow_factory, doc, validator=valid, chain=False, parser=documents.PARSER)
    runtime.actors["validate_document"].fn(doc)  # the message, delivered again: nothing to do
    assert queries.get_document(runtime.uow_factory(), doc).status == S.VALIDATED
    run_pipeline(runtime)  # the match message the validation wrote
    view = queries.get_document(runtime.uow_factory(), doc)
    assert view.status == S.APPROVED
    assert [t.to_status for t in view.history].count("validated") == 1


@pytest.mark.parametrize("runtime", [broken], indirect=True)
def test_retries_exhausted_leave_the_document_dead(runtime: bootstrap.Runtime) -> None:
    doc = submit(runtime)
    run_pipeline(runtime)
    view = queries.get_document(runtime.uow_factory(), doc)
    assert view.status == S.DEAD
    assert "validator unavailable" in (view.failure_reason or "")
    assert view.history[-1].from_status == S.VALIDATING


@pytest.mark.parametrize("runtime", [quoting], indirect=True)
def test_document_content_stays_out_of_the_dead_reason_and_the_logs(
    runtime: bootstrap.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    doc = submit(runtime)
    with caplog.at_level("DEBUG"):
        run_pipeline(runtime)
    view = queries.get_document(runtime.uow_factory(), doc)
    assert view.status == S.DEAD
    assert "xs:decimal at /Invoice/cbc:Note[1]" in (view.failure_reason or "")  # what and where
    assert SECRET not in (view.failure_reason or "")
    assert all(SECRET not in f.message for f in view.findings)
    assert "xs:decimal" in caplog.text
    assert SECRET not in caplog.text


def test_relay_marks_only_what_the_broker_accepted(runtime: bootstrap.Runtime) -> None:
    first = submit(runtime, "A")
    submit(runtime, "B")
    sent: list[str] = []

    def flaky(action: str, document_id: str) -> None:
        if sent:
            raise ConnectionError("broker down")
        sent.append(document_id)

    relay = messaging.OutboxRelay(runtime.uow_factory, flaky)
    with pytest.raises(ConnectionError):
        relay.relay_once()
    assert sent == [first]
    with runtime.uow_factory() as uow:
        assert uow.outbox.pending_count() == 1


def test_check_ready(runtime: bootstrap.Runtime) -> None:
    checks = runtime.check_ready()
    assert checks["database"] == "ok"
    assert checks["broker"] == "ok"
    assert set(checks) == {"database", "broker", "artefacts"}


def test_embedded_server_without_worker_threads_leaves_the_outbox_to_a_worker(runtime: bootstrap.Runtime) -> None:
    runtime.start_background()  # EINVOICE_WORKERS_IN_PROCESS=0 in this fixture
    assert [p.name for p in runtime._pollers] == ["sweeper"]


@pytest.mark.parametrize(("did", "again"), [([100, 0], True), ([37, 0], False), ([0, 0], False)])
def test_a_poller_steps_again_at_once_only_after_a_full_batch(did: list[int], again: bool) -> None:
    steps: list[float] = []
    done = threading.Event()

    def step() -> int:
        steps.append(time.monotonic())
        if len(steps) == 2:
            done.set()
        return did[min(len(steps), len(did)) - 1]

    poller = messaging.Poller("relay", step, interval=30.0, again_at=100)
    poller.start()
    try:
        assert done.wait(0.5) is again  # the second step came at once, or waits for the interval
        poller.wake()  # a wake always brings the next step
        assert done.wait(5.0)
    finally:
        poller.stop()


def test_a_stage_that_writes_a_message_asks_for_the_relay(runtime: bootstrap.Runtime) -> None:
    """A worker's relay polls seldom (``WORKER_RELAY_INTERVAL_SECONDS``): the finish that wrote a
    message for the stage after calls ``Pipeline.on_sent``, and one that wrote none does not."""
    sent: list[str] = []
    runtime.pipeline.on_sent = lambda: sent.append("woken")
    first = submit(runtime, "INV-1")
    runtime.actors["validate_document"].fn(first)  # validated and matched in one finish: no message
    assert queries.get_document(runtime.uow_factory(), first).status == S.APPROVED
    assert sent == []
    runtime.pipeline.settings = runtime.pipeline.settings.model_copy(update={"fault_pause": "validate=0"})
    second = submit(runtime, "INV-2")
    runtime.actors["validate_document"].fn(second)  # each stage in its own write: a match message
    assert queries.get_document(runtime.uow_factory(), second).status == S.VALIDATED
    assert sent == ["woken"]


def test_the_relay_is_woken_at_most_every_relay_wake_seconds(runtime: bootstrap.Runtime) -> None:
    relay = messaging.Poller("outbox-relay", lambda: 0, interval=60)
    runtime._pollers = [relay]
    try:
        runtime.wake_relay()
        assert relay._wake.is_set()
        relay._wake.clear()
        runtime.wake_relay()  # at once again: the relay is busy with the first wake's batch
        assert not relay._wake.is_set()
        time.sleep(bootstrap.RELAY_WAKE_SECONDS)
        runtime.wake_relay()
        assert relay._wake.is_set()
    finally:
        runtime._pollers = []


def test_a_worker_process_relay_polls_seldom_and_is_woken_by_its_stages() -> None:
    settings = Settings(database_url="sqlite://", broker_url=None, workers_in_process=0)
    runtime = bootstrap.build(settings, validator=valid, migrate=True)
    try:
        runtime._start_pollers(relay_every=bootstrap.WORKER_RELAY_INTERVAL_SECONDS)
        relay = next(p for p in runtime._pollers if p.name == "outbox-relay")
        assert relay.interval == bootstrap.WORKER_RELAY_INTERVAL_SECONDS
        assert runtime.pipeline.on_sent == runtime.wake_relay
    finally:
        runtime.stop()
