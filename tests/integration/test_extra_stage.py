"""Adding a stage is one declaration and one handler: a test-only registry puts a ``screen`` stage
between validation and matching, and the real runner, store and sweeper take documents through it,
on SQLite and on PostgreSQL, through the fault drills (a lost message, a repeated message, a worker
killed mid-stage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.services import accounts, process, queries, sweeper
from einvoice.services.intake import submit_document
from einvoice.services.stages import Outcome, Runner, Stage, StageRegistry, Work
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.unit.services import documents
from tests.unit.services.test_process import FakeValidator, Report

SCREENED = "screened"
SCREEN_CALLS: list[str] = []


def screen(work: Work[process.Ports]) -> Outcome:
    """The new stage's handler: a look at the document, a column it sets."""
    SCREEN_CALLS.append(work.document.id)
    return Outcome(((SCREENED, "screened: nothing to report"),), {"failure_reason": None})


SCREEN = Stage[process.Ports](
    "screen",
    starts_from=frozenset({"validated"}),
    working="screening",
    outcomes=frozenset({SCREENED}),
    resume="validated",
    handler=screen,
)
REGISTRY = StageRegistry[process.Ports](
    [process.VALIDATE, SCREEN, replace(process.MATCH, starts_from=frozenset({SCREENED})), process.POST]
)
PORTS = process.Ports(validator=FakeValidator(Report("valid")), parser=documents.PARSER)
HISTORY = [
    (None, "received", "api"),
    ("received", "validating", "worker:validate"),
    ("validating", "validated", "worker:validate"),
    ("validated", "screening", "worker:screen"),
    ("screening", SCREENED, "worker:screen"),
    (SCREENED, "matching", "worker:match"),
    ("matching", "matched", "worker:match"),
    ("matched", "approved", "worker:match"),
]


# uow_factory: tests/integration/conftest.py (each test on SQLite and PostgreSQL)


def submitted(uow_factory: Callable[[], UnitOfWork], number: str, issue_date: str = "2026-11-01") -> str:
    if not accounts.list_institutions(uow_factory()):
        accounts.add_institution(uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT, unchecked=True)
        documents.register_seller(uow_factory)
        documents.register_contract(uow_factory, accounts.list_institutions(uow_factory())[0].id)
    supplier = accounts.list_suppliers(uow_factory())[0]
    raw = documents.invoice(number, issue_date=issue_date)
    return submit_document(
        uow_factory, supplier=supplier, raw=raw, idempotency_key=None, settings=Settings()
    ).document.id


def runner(uow_factory: Callable[[], UnitOfWork], **kwargs: object) -> Runner[process.Ports]:
    return process.runner(uow_factory, PORTS, registry=REGISTRY, **kwargs)  # type: ignore[arg-type]


def deliver(uow_factory: Callable[[], UnitOfWork], run: Runner[process.Ports]) -> int:
    """Hand every message in the outbox to the runner, as relay, broker and actors do; return how many."""
    count = 0
    while True:
        with uow_factory() as uow:
            batch = uow.outbox.take_pending(now=datetime.now(UTC))
            uow.commit()
        if not batch:
            return count
        for _, action, document_id in batch:
            run.run(action, document_id)
            count += 1


def history(uow_factory: Callable[[], UnitOfWork], document_id: str) -> list[tuple[str | None, str, str]]:
    view = queries.get_document(uow_factory(), document_id)
    return [(t.from_status, t.to_status, t.actor) for t in view.history]


def test_the_registry_derives_messages_actors_and_resume_points_from_the_declaration() -> None:
    assert REGISTRY.next_stage("validated", PORTS) is SCREEN
    assert REGISTRY.next_stage(SCREENED, PORTS).name == "match"  # type: ignore[union-attr]
    assert REGISTRY.resume_point("screening") == ("validated", SCREEN)
    assert "screening" in REGISTRY.working_states
    assert "validated" in REGISTRY.waiting_states(PORTS)
    assert SCREEN.actor_name == "screen_document"
    with pytest.raises(ValueError, match="two stages start from"):
        StageRegistry([process.VALIDATE, SCREEN, process.MATCH])


def test_documents_go_through_the_new_stage_with_the_real_runner(uow_factory: Callable[[], UnitOfWork]) -> None:
    # issued 8 days apart: one total within 7 days of another would be a suspected duplicate
    docs = [submitted(uow_factory, f"EXTRA-{n}", f"2026-11-{1 + 8 * n:02d}") for n in range(3)]
    # validate's finish writes the message for screen; screen's finish runs matching at once.
    assert deliver(uow_factory, runner(uow_factory)) == 6
    for doc in docs:
        assert history(uow_factory, doc) == HISTORY


def test_a_repeated_message_changes_nothing(uow_factory: Callable[[], UnitOfWork]) -> None:
    doc = submitted(uow_factory, "EXTRA-REPEAT")
    run = runner(uow_factory)
    run.run("validate", doc)
    SCREEN_CALLS.clear()
    first = run.run("screen", doc, token="m-1")
    again = run.run("screen", doc, token="m-1")
    other = run.run("screen", doc, token="m-2")
    assert (first.ran, again.ran, other.ran) == (True, False, False)
    assert [doc] == SCREEN_CALLS
    assert history(uow_factory, doc) == HISTORY


def test_a_lost_message_is_sent_again_by_the_sweeper(uow_factory: Callable[[], UnitOfWork]) -> None:
    doc = submitted(uow_factory, "EXTRA-LOST")
    run = runner(uow_factory)
    run.run("validate", doc)
    with uow_factory() as uow:  # the message for screen: lost on the way to the broker
        assert [(a, d) for _, a, d in uow.outbox.take_pending(now=datetime.now(UTC))][-1] == ("screen", doc)
        uow.commit()
    later = datetime.now(UTC) + timedelta(minutes=10)
    swept = sweeper.sweep(uow_factory, stuck_after=timedelta(minutes=5), ports=PORTS, registry=REGISTRY, now=later)
    assert swept.resent == (doc,)
    deliver(uow_factory, run)
    assert history(uow_factory, doc) == HISTORY


class Killed(BaseException):
    """The worker process dying in the middle of a stage."""


def test_a_worker_killed_mid_stage_is_taken_over_after_its_lease(uow_factory: Callable[[], UnitOfWork]) -> None:
    doc = submitted(uow_factory, "EXTRA-KILLED")
    runner(uow_factory).run("validate", doc)
    t0 = datetime.now(UTC)

    def die(stage: str) -> None:
        raise Killed(stage)

    with pytest.raises(Killed):  # claimed, then the process died
        runner(uow_factory, pause=die, clock=lambda: t0, lease_seconds=60).run("screen", doc, token="m-1")
    assert queries.get_document(uow_factory(), doc).status == "screening"
    busy = runner(uow_factory, clock=lambda: t0 + timedelta(seconds=30)).run("screen", doc, token="m-2")
    assert (busy.ran, busy.note) == (False, "another worker holds the document")
    later = t0 + timedelta(seconds=61)
    swept = sweeper.sweep(uow_factory, stuck_after=timedelta(minutes=5), ports=PORTS, registry=REGISTRY, now=later)
    assert swept.released == (doc,)
    deliver(uow_factory, runner(uow_factory))
    assert history(uow_factory, doc) == [
        *HISTORY[:4],
        ("screening", "validated", "sweeper"),
        ("validated", "screening", "worker:screen"),
        *HISTORY[4:],
    ]


def test_validation_stores_the_parsed_document_in_its_finish(uow_factory: Callable[[], UnitOfWork]) -> None:
    from einvoice.parsers.ubl import parse_for_pipeline

    valid, invalid = submitted(uow_factory, "PARSED-1"), submitted(uow_factory, "PARSED-2")
    ports = process.Ports(validator=FakeValidator(Report("valid")), parser=parse_for_pipeline)
    assert process.runner(uow_factory, ports).run("validate", valid).status == "approved"
    rejecting = process.Ports(validator=FakeValidator(Report("invalid")), parser=parse_for_pipeline)
    assert process.runner(uow_factory, rejecting).run("validate", invalid).status == "rejected"
    with uow_factory() as uow:
        parsed = uow.documents.parsed(valid)
        assert parsed is not None
        assert parsed.id == "PARSED-1"  # BT-1
        assert str(parsed.totals.payable_amount.value) == "125.00"  # BT-115, as the document wrote it
        assert parsed.seller is not None
        assert parsed.seller.vat_id == documents.SELLER_VAT
        assert uow.documents.parsed(invalid) is None
