"""Leases kept while a stage works; a validation abandoned twice is not sent a third time."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import SupplierView, process, queries, sweeper
from einvoice.store import UnitOfWork
from tests.unit.services import documents
from tests.unit.services.test_process import Report, submitted
from tests.unit.services.test_sweeper import outbox

#: Validation with the parser port the pipeline wires (matching reads the parsed document).
validate_document = functools.partial(process.validate_document, parser=documents.PARSER)


@pytest.fixture(autouse=True)
def _registered(contract: object) -> None:
    pass


def test_a_validation_longer_than_its_lease_keeps_it(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)
    outbox(uow_factory)
    sweeps: list[sweeper.SweepResult] = []

    def slow(raw: bytes, **context: object) -> Report:
        for _ in range(4):  # 0.6 s in all, twice the lease
            time.sleep(0.15)
            sweeps.append(sweeper.sweep(uow_factory, stuck_after=timedelta(seconds=300)))
        return Report("valid")

    result = validate_document(uow_factory, doc, validator=slow, lease_seconds=0.3)
    assert result.status == S.VALIDATED
    assert [s.total for s in sweeps] == [0, 0, 0, 0]
    history = [(t.from_status, t.to_status) for t in queries.get_document(uow_factory(), doc).history]
    assert history == [(None, "received"), ("received", "validating"), ("validating", "validated")]


def test_the_lease_is_no_longer_kept_once_the_stage_is_done(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)

    def dies(raw: bytes, **context: object) -> Report:
        raise KeyboardInterrupt  # stands in for kill -9 mid-stage

    with pytest.raises(KeyboardInterrupt):
        validate_document(uow_factory, doc, validator=dies, lease_seconds=0.2)
    time.sleep(0.4)
    assert sweeper.sweep(uow_factory, stuck_after=timedelta(seconds=300)).released == (doc,)


def test_a_validation_abandoned_twice_is_rejected_not_sent_again(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)
    outbox(uow_factory)
    t0 = datetime.now(UTC)

    def dies(raw: bytes, **context: object) -> Report:
        raise KeyboardInterrupt

    for attempt, token in enumerate(("m1", "m2")):
        now = t0 + timedelta(seconds=1000 * attempt)
        with pytest.raises(KeyboardInterrupt):
            validate_document(uow_factory, doc, validator=dies, token=token, clock=lambda now=now: now)
        result = sweeper.sweep(uow_factory, stuck_after=timedelta(seconds=300), now=now + timedelta(seconds=301))
        if attempt == 0:
            assert result.released == (doc,)
            assert outbox(uow_factory) == [("validate", doc)]
    assert result.given_up == (doc,)
    assert outbox(uow_factory) == []
    view = queries.get_document(uow_factory(), doc)
    assert view.status == S.REJECTED
    assert (view.history[-1].from_status, view.history[-1].actor) == ("validating", "sweeper")
    (finding,) = view.findings
    assert finding.rule == "VALIDATION-LIMIT"
    assert finding.is_fatal
    assert "abandoned 2 times" in finding.message
