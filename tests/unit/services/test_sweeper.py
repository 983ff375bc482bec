from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.domain.states import DocumentStatus as S
from einvoice.services import SupplierView, process, queries, sweeper
from einvoice.store import UnitOfWork
from tests.unit.services import documents
from tests.unit.services.test_process import FakeValidator, NotReadyPoster, Report, submitted

#: Validation with the parser port the pipeline wires (matching reads the parsed document).
validate_document = functools.partial(process.validate_document, parser=documents.PARSER)

STUCK = timedelta(seconds=300)


@pytest.fixture(autouse=True)
def _registered(contract: object) -> None:
    pass


def outbox(uow_factory: Callable[[], UnitOfWork]) -> list[tuple[str, str]]:
    with uow_factory() as uow:
        rows = uow.outbox.claim_pending()
        uow.outbox.mark_sent(rows, now=datetime.now(UTC))
        uow.commit()
        return [(r.action, r.document_id) for r in rows]


def test_waiting_document_is_sent_again_once_per_period(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)
    assert outbox(uow_factory) == [("validate", doc)]
    now = datetime.now(UTC)
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=now).total == 0
    later = now + STUCK + timedelta(seconds=1)
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=later).resent == (doc,)
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=later + timedelta(seconds=10)).total == 0
    assert outbox(uow_factory) == [("validate", doc)]


def test_expired_lease_is_released_with_a_recorded_transition(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)
    outbox(uow_factory)
    t0 = datetime.now(UTC)

    def dies(raw: bytes, **context: object) -> Report:
        raise KeyboardInterrupt  # stands in for kill -9 mid-stage

    with pytest.raises(KeyboardInterrupt):
        validate_document(uow_factory, doc, validator=dies, token="m1", clock=lambda: t0)
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=t0 + timedelta(seconds=10)).total == 0
    result = sweeper.sweep(uow_factory, stuck_after=STUCK, now=t0 + STUCK + timedelta(seconds=1))
    assert result.released == (doc,)
    assert outbox(uow_factory) == [("validate", doc)]
    view = queries.get_document(uow_factory(), doc)
    assert view.status == S.RECEIVED
    assert (view.history[-1].from_status, view.history[-1].actor) == ("validating", "sweeper")
    done = validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), token="m2")
    assert done.status == S.VALIDATED


def test_resting_documents_are_left_alone(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    doc = submitted(uow_factory, supplier)
    validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")))
    process.match_document(uow_factory, doc)
    outbox(uow_factory)
    much_later = datetime.now(UTC) + timedelta(days=1)
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=much_later).total == 0
    assert sweeper.sweep(
        uow_factory,
        stuck_after=STUCK,
        now=much_later,
        ports=process.Ports(parser=documents.PARSER, poster=lambda document, raw: "JE-1"),
    ).resent == (doc,)


def test_documents_held_by_posting_are_left_alone(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
) -> None:
    doc = submitted(uow_factory, supplier)
    poster = NotReadyPoster()
    validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), poster=poster, chain=True)
    process.post_document(uow_factory, doc, poster=poster)
    outbox(uow_factory)
    much_later = datetime.now(UTC) + timedelta(days=1)
    ports = process.Ports(parser=documents.PARSER, poster=poster)
    assert queries.get_document(uow_factory(), doc).failure_reason is not None
    assert sweeper.sweep(uow_factory, stuck_after=STUCK, now=much_later, ports=ports).total == 0


def test_sent_messages_are_purged_after_a_week(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
    submitted(uow_factory, supplier)
    submitted(uow_factory, supplier, "INV-2")
    outbox(uow_factory)
    assert sweeper.purge_sent_messages(uow_factory) == 0
    assert sweeper.purge_sent_messages(uow_factory, now=datetime.now(UTC) + timedelta(days=8)) == 2
