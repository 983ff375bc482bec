"""Stages with a fake validator: outcomes, idempotence, leases, dead ends. ``StageTests`` runs here
on the store's in-memory twin and in ``tests/integration/test_process_on_databases.py`` on SQLite and
PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.domain.invoice import Invoice
from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import ConflictError, NotFoundError, PermanentError, PostingNotReadyError, TransientError
from einvoice.services import DocumentView, SupplierView, process, queries, responses
from einvoice.services.intake import submit_document
from einvoice.services.matching import MATCHED
from einvoice.services.stages import StageRegistry
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from tests.unit.services import documents

#: Validation with the parser port the pipeline wires (matching reads the parsed document).
validate_document = functools.partial(process.validate_document, parser=documents.PARSER)

WARNING = Finding("PEPPOL-EN16931-R003", Severity.WARNING, Layer.PEPPOL, "buyer reference advised")
FATAL = Finding("BR-01", Severity.FATAL, Layer.EN16931, "specification identifier missing")
#: (from, to, actor) of a valid document's history, intake to approval.
THROUGH_TO_APPROVED = [
    (None, "received", "api"),
    ("received", "validating", "worker:validate"),
    ("validating", "validated", "worker:validate"),
    ("validated", "matching", "worker:match"),
    ("matching", "matched", "worker:match"),
    ("matched", "approved", "worker:match"),
]


@dataclass
class Report:
    verdict: str
    findings: tuple[Finding, ...] = ()

    def rule_set(self) -> dict[str, object]:
        return {"rules": "peppol-bis3", "rules_version": "2026.5"}


class FakeValidator:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.calls = 0

    def __call__(self, raw: bytes, **context: object) -> Report:
        self.calls += 1
        return self.report


def submitted(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, number: str = "INV-1", **kw: str) -> str:
    return submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice(number, **kw), idempotency_key=None, settings=Settings()
    ).document.id


def view(uow_factory: Callable[[], UnitOfWork], document_id: str) -> DocumentView:
    return queries.get_document(uow_factory(), document_id)


def pending(uow_factory: Callable[[], UnitOfWork]) -> list[tuple[str, str]]:
    with uow_factory() as uow:
        return [(r.action, r.document_id) for r in uow.outbox.claim_pending()]


class FakePoster:
    def __init__(self, fail_first: int = 0, permanent: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_first = fail_first
        self.permanent = permanent

    def __call__(self, document: DocumentView) -> str:
        self.calls.append(document.id)
        if self.permanent:
            raise PermanentError("ERP refuses the account")
        if len(self.calls) <= self.fail_first:
            raise TransientError("ERP timeout")
        return f"JE-{document.id[:8]}"


class NotReadyPoster:
    """A poster whose institution's books are not ready until ``ready`` is set."""

    def __init__(self) -> None:
        self.ready = False

    def __call__(self, document: DocumentView) -> str:
        if not self.ready:
            raise PostingNotReadyError("institution 0192:987654325 has no posting profile")
        return "JE-1"


def test_a_stage_holds_documents_only_where_it_declares() -> None:
    with pytest.raises(ValueError, match="holds documents only in states it starts from and ends in"):
        StageRegistry([replace(process.POST, holds=frozenset({S.POSTED}))])
    assert process.REGISTRY.holding_states == {S.APPROVED, S.POSTING}


class AwaitingPoster:
    """A poster whose ERP confirms entries later (a pull acknowledged, a file batch confirmed)."""

    def __init__(self) -> None:
        self.confirmed_by: str | None = None
        self.calls = 0

    def __call__(self, document: DocumentView) -> process.Delivery:
        self.calls += 1
        return process.Delivery("je_" + document.id, self.confirmed_by, "waiting for its acknowledgement")


class KeepingPoster:
    """A ``process.FinishPoster`` whose delivery is keeping the entry (as the pull feed's): the POST
    stage posts in the finish's transaction, the entry's row written with the document's change."""

    posts_in_finish = True

    def __init__(self, *, ready: bool = True) -> None:
        self.ready = ready
        #: the commitment the match result names, look_for_kept, the commitment matching handed over
        self.calls: list[tuple[str | None, bool, str | None]] = []
        #: the documents whose institution's books it was asked to read ahead
        self.read_ahead_for: list[str] = []

    def read_ahead(self, uow: UnitOfWork, document: DocumentView, /) -> None:
        self.read_ahead_for.append(document.id)

    def __call__(self, document: DocumentView) -> process.Delivery:
        raise AssertionError("a poster that keeps its entries posts in the finish")

    def post_in_finish(
        self,
        uow: UnitOfWork,
        document: DocumentView,
        invoice: Invoice,
        /,
        *,
        look_for_kept: bool,
        known: Mapping[str, Any],
    ) -> tuple[process.Delivery, dict[str, Any] | None]:
        handed = known.get(MATCHED)
        self.calls.append(((document.match_result or {}).get("commitment"), look_for_kept, handed and handed.number))
        if not self.ready:
            raise PostingNotReadyError("institution 0192:987654325 has no posting profile")
        entry_id, waiting = f"je_{document.id}", "waiting for its acknowledgement"
        if look_for_kept and uow.posting.entry(document.id) is not None:
            return process.Delivery(entry_id, None, waiting), None
        row = {
            "document_id": document.id,
            "entry_id": entry_id,
            "institution_id": document.institution_id,
            "data": {"id": entry_id, "document_number": invoice.id},
            "created_at": datetime.now(UTC),
            "posting_date": datetime.now(UTC).date(),
        }
        return process.Delivery(entry_id, None, waiting), row


def test_posting_runs_at_once_only_with_a_poster_that_keeps_its_entries() -> None:
    assert process.POST.runs_at_once(process.Ports(poster=KeepingPoster()))
    assert process.POST.runs_in_finish(process.Ports(poster=KeepingPoster()))
    for ports in (process.Ports(poster=FakePoster()), process.Ports()):
        assert not process.POST.runs_at_once(ports)
        assert not process.POST.runs_in_finish(ports)
    # what a message for validation may have carried a document on to (who may record it dead)
    assert process.REGISTRY.at_once_after(process.VALIDATE, process.Ports(poster=KeepingPoster())) == [
        process.MATCH,
        process.POST,
    ]
    assert process.REGISTRY.at_once_after(process.VALIDATE, process.Ports(poster=FakePoster())) == [process.MATCH]
    assert process.REGISTRY.at_once_after(process.VALIDATE) == [process.MATCH, process.POST]  # with some ports


def codes_of(uow_factory: Callable[[], UnitOfWork], document_id: str) -> list[tuple[str, str]]:
    return [(r.kind, r.code) for r in responses.list_responses(uow_factory(), document_id)]


class StageTests:
    """The stages on a store: ``uow_factory``, ``supplier`` and ``contract`` are the fixtures of the
    directory a subclass is collected in (here the in-memory twin; ``tests/integration`` runs them on
    SQLite and PostgreSQL)."""

    @pytest.fixture(autouse=True)
    def _registered(self, contract: object) -> None:
        pass

    def test_valid_document_goes_through_to_approved_with_every_transition_recorded(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        validator = FakeValidator(Report("valid", (WARNING,)))
        result = validate_document(uow_factory, doc, validator=validator)
        assert (result.ran, result.status) == (True, S.VALIDATED)
        assert ("match", doc) in pending(uow_factory)
        result = process.match_document(uow_factory, doc)
        assert result.status == S.APPROVED
        final = view(uow_factory, doc)
        assert final.status == S.APPROVED
        assert [(t.from_status, t.to_status, t.actor) for t in final.history] == THROUGH_TO_APPROVED
        assert final.findings == (WARNING,)
        assert final.match_result is not None
        assert final.match_result["outcome"] == "matched"
        assert all(a != "post" for a, _ in pending(uow_factory))  # no ERP connector: rests at approved

    def test_fatal_finding_rejects(self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
        doc = submitted(uow_factory, supplier)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("invalid", (FATAL, WARNING))))
        final = view(uow_factory, doc)
        assert final.status == S.REJECTED
        assert final.findings == (FATAL, WARNING)
        assert ("match", doc) not in pending(uow_factory)
        assert final.ruleset == {"rules": "peppol-bis3", "rules_version": "2026.5"}  # the stored report names it

    def test_the_rule_set_is_stored_with_the_validation_also_when_matched_at_once(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        assert view(uow_factory, doc).ruleset is None
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), chain=True)
        final = view(uow_factory, doc)
        assert final.status == S.APPROVED
        assert final.ruleset == {"rules": "peppol-bis3", "rules_version": "2026.5"}

    def test_a_repeated_message_changes_nothing(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        validator = FakeValidator(Report("valid", (WARNING,)))
        first = validate_document(uow_factory, doc, validator=validator)
        second = validate_document(uow_factory, doc, validator=validator)
        assert first.ran
        assert not second.ran
        assert validator.calls == 1
        process.match_document(uow_factory, doc)
        before = view(uow_factory, doc)
        assert not process.match_document(uow_factory, doc).ran
        assert not validate_document(uow_factory, doc, validator=validator).ran
        after = view(uow_factory, doc)
        assert after == before
        assert pending(uow_factory).count(("match", doc)) == 1

    def test_suspected_duplicate_goes_to_exception(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        first = submitted(uow_factory, supplier, "DUP-1", amount="1.00")
        second = submitted(uow_factory, supplier, "DUP-1", amount="2.00")
        for doc in (first, second):
            validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")))
            process.match_document(uow_factory, doc)
        assert view(uow_factory, first).status == S.APPROVED
        dup = view(uow_factory, second)
        assert dup.status == S.EXCEPTION
        assert dup.match_result is not None
        (reason,) = dup.match_result["reasons"]
        assert reason["code"] == "DUPLICATE"
        assert first in reason["message"]  # names the earlier document

    def test_the_lease_holder_resumes_and_others_wait(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        t0 = datetime.now(UTC)

        def boom(raw: bytes, **context: object) -> Report:
            raise TransientError("database went away")

        with pytest.raises(TransientError):
            validate_document(uow_factory, doc, validator=boom, token="msg-1", clock=lambda: t0)
        assert view(uow_factory, doc).status == S.VALIDATING
        # Another message (the sweeper's, say) while the lease runs: not its turn.
        other = validate_document(
            uow_factory,
            doc,
            validator=FakeValidator(Report("valid")),
            token="msg-2",
            clock=lambda: t0 + timedelta(seconds=5),
        )
        assert not other.ran
        # The retry of the first message resumes its own claim.
        again = validate_document(
            uow_factory,
            doc,
            validator=FakeValidator(Report("valid")),
            token="msg-1",
            clock=lambda: t0 + timedelta(seconds=6),
        )
        assert again.status == S.VALIDATED
        assert [t.to_status for t in view(uow_factory, doc).history].count("validating") == 1

    def test_an_expired_lease_is_taken_over_and_the_slow_worker_result_discarded(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        t0 = datetime.now(UTC)
        late = t0 + timedelta(seconds=400)
        slow_result: list[process.StageResult] = []

        def slow_validator(raw: bytes, **context: object) -> Report:
            # While this worker is stuck, another takes over after the lease and finishes first.
            taken = validate_document(
                uow_factory,
                doc,
                validator=FakeValidator(Report("invalid", (FATAL,))),
                token="msg-2",
                clock=lambda: late,
            )
            slow_result.append(taken)
            return Report("valid", (WARNING,))

        result = validate_document(
            uow_factory, doc, validator=slow_validator, token="msg-1", clock=lambda: t0, lease_seconds=300
        )
        assert slow_result[0].status == S.REJECTED
        assert not result.ran  # the slow worker's claim was lost: nothing it computed is written
        final = view(uow_factory, doc)
        assert final.status == S.REJECTED
        assert final.findings == (FATAL,)
        assert "taken over" in (final.history[-2].detail or "")

    def test_mark_dead_records_the_cause(self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
        doc = submitted(uow_factory, supplier)
        assert process.mark_dead(uow_factory, doc, stage="validate", cause="no bytes")
        final = view(uow_factory, doc)
        assert final.status == S.DEAD
        assert final.failure_reason == "no bytes"
        assert final.findings[-1].rule == "ENGINE-STAGE-FAILED"
        assert not process.mark_dead(uow_factory, doc, stage="validate", cause="again")

    def test_engine_error_verdict_is_dead(self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView) -> None:
        doc = submitted(uow_factory, supplier)
        engine = Finding("ENGINE", Severity.FATAL, Layer.ENGINE, "stylesheet missing")
        validate_document(uow_factory, doc, validator=FakeValidator(Report("error", (engine,))))
        assert view(uow_factory, doc).status == S.DEAD

    def test_posting_when_a_poster_is_wired(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")))
        process.match_document(uow_factory, doc, poster=FakePoster())
        assert ("post", doc) in pending(uow_factory)
        poster = FakePoster(fail_first=1)
        with pytest.raises(TransientError):
            process.post_document(uow_factory, doc, poster=poster)
        assert view(uow_factory, doc).status == S.POSTING_FAILED
        assert process.post_document(uow_factory, doc, poster=poster).status == S.POSTED
        assert not process.post_document(uow_factory, doc, poster=poster).ran
        final = view(uow_factory, doc)
        assert final.journal_ref == f"JE-{doc[:8]}"
        assert len(poster.calls) == 2
        assert [t.to_status for t in final.history][-4:] == ["posting", "posting_failed", "posting", "posted"]

    def test_a_document_whose_books_are_not_ready_is_held_in_approved_with_the_reason(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        poster = NotReadyPoster()
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), poster=poster, chain=True)
        assert pending(uow_factory).count(("post", doc)) == 1
        result = process.post_document(uow_factory, doc, poster=poster)  # no TransientError: nothing to retry
        held = view(uow_factory, doc)
        assert (result.status, held.status) == (S.APPROVED, S.APPROVED)
        assert held.failure_reason == "waiting: institution 0192:987654325 has no posting profile"
        assert [(t.from_status, t.to_status, t.detail) for t in held.history][-2:] == [
            ("approved", "posting", None),
            ("posting", "approved", held.failure_reason),
        ]
        # Held: no new message for the post stage that starts from approved.
        assert pending(uow_factory).count(("post", doc)) == 1
        poster.ready = True
        assert process.post_document(uow_factory, doc, poster=poster).status == S.POSTED
        assert view(uow_factory, doc).failure_reason is None

    def test_a_poster_that_keeps_its_entries_posts_in_the_finish_that_approves(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        poster = KeepingPoster()
        validator = FakeValidator(Report("valid"))
        result = validate_document(uow_factory, doc, validator=validator, poster=poster, token="msg-1", chain=True)
        assert (result.stage, result.status) == ("post", S.POSTING)
        final = view(uow_factory, doc)
        assert [(t.from_status, t.to_status, t.actor) for t in final.history] == [
            *THROUGH_TO_APPROVED,
            ("approved", "posting", "worker:post"),
            ("posting", "posting", "worker:post"),
        ]
        assert len({t.at for t in final.history[2:]}) == 1  # one finish: validation's
        assert (final.journal_ref, final.failure_reason) == (f"je_{doc}", "waiting: waiting for its acknowledgement")
        assert pending(uow_factory) == [("validate", doc)]  # no message for posting: it is done
        with uow_factory() as uow:
            kept = uow.posting.entry(doc)
            assert kept is not None
            assert kept.entry_id == f"je_{doc}"
            row = uow.documents.get(doc)
            assert row is not None
            assert (row.lease_token, row.lease_expires_at) == (None, None)
        # told of the commitment matching chose and locked in the same finish; no entry looked for
        assert poster.calls == [("REF-1", False, "REF-1")]
        assert poster.read_ahead_for == [doc]  # its reads queued before the finish's first round trip
        assert codes_of(uow_factory, doc) == [("invoice-response", "AB"), ("invoice-response", "AP")]
        # The same message again (a redelivery) changes nothing.
        assert not validate_document(uow_factory, doc, validator=validator, poster=poster, token="msg-1").ran
        assert view(uow_factory, doc) == final
        assert len(poster.calls) == 1

    def test_a_poster_that_keeps_its_entries_holds_a_document_whose_books_are_not_ready_in_the_same_finish(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        poster = KeepingPoster(ready=False)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), poster=poster, chain=True)
        held = view(uow_factory, doc)
        assert (held.status, held.failure_reason) == (
            S.APPROVED,
            "waiting: institution 0192:987654325 has no posting profile",
        )
        assert [(t.from_status, t.to_status) for t in held.history][-3:] == [
            ("matched", "approved"),
            ("approved", "posting"),
            ("posting", "approved"),
        ]
        assert pending(uow_factory) == [("validate", doc)]  # held: no message
        with uow_factory() as uow:
            assert uow.posting.entry(doc) is None
        # The books set up, the post stage's own message (as setting a profile sends) posts it.
        poster.ready = True
        assert process.post_document(uow_factory, doc, poster=poster).status == S.POSTING
        final = view(uow_factory, doc)
        assert (final.journal_ref, final.failure_reason) == (f"je_{doc}", "waiting: waiting for its acknowledgement")
        assert [(t.from_status, t.to_status) for t in final.history][-2:] == [
            ("approved", "posting"),
            ("posting", "posting"),
        ]
        assert poster.calls[-1] == ("REF-1", True, None)  # the stored match result; a kept entry looked for
        with uow_factory() as uow:
            assert uow.posting.entry(doc) is not None

    def test_a_delivered_entry_holds_the_document_in_posting_without_a_lease_until_confirmed(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        from einvoice.services import sweeper

        doc = submitted(uow_factory, supplier)
        poster = AwaitingPoster()
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), poster=poster, chain=True)
        result = process.post_document(uow_factory, doc, poster=poster)  # nothing raised: no retry burnt
        held = view(uow_factory, doc)
        assert (result.status, held.status, held.journal_ref) == (S.POSTING, S.POSTING, f"je_{doc}")
        assert held.failure_reason == "waiting: waiting for its acknowledgement"
        assert [(t.from_status, t.to_status) for t in held.history][-2:] == [
            ("approved", "posting"),
            ("posting", "posting"),
        ]
        with uow_factory() as uow:
            row = uow.documents.get(doc)
            assert row is not None
            assert (row.lease_token, row.lease_expires_at) == (None, None)
        assert pending(uow_factory).count(("post", doc)) == 1  # only the one that brought it here
        # However long the ERP takes, the sweeper neither takes it back nor sends it again.
        ports = process.Ports(poster=poster)
        a_week_later = datetime.now(UTC) + timedelta(days=7)
        assert sweeper.sweep(uow_factory, stuck_after=timedelta(minutes=5), ports=ports, now=a_week_later).total == 0
        assert view(uow_factory, doc).history == held.history

        # A message sent again by a person finds the entry confirmed meanwhile: posted, once.
        poster.confirmed_by = "erp:Treasury ERP"
        assert process.post_document(uow_factory, doc, poster=poster).status == S.POSTED
        final = view(uow_factory, doc)
        assert (final.failure_reason, final.history[-1].detail) == (
            None,
            f"journal je_{doc} confirmed by erp:Treasury ERP",
        )
        assert [t.to_status for t in final.history].count(S.POSTED) == 1

    def test_a_posting_whose_worker_died_is_taken_back_even_with_a_reason_from_a_failed_try(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        """Held means no lease: a document claimed from ``posting_failed`` keeps that failure's reason
        while a worker holds it, and is taken back when the worker's lease runs out."""
        from einvoice.services import sweeper

        doc = submitted(uow_factory, supplier)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), chain=True)
        with pytest.raises(TransientError):
            process.post_document(uow_factory, doc, poster=FakePoster(fail_first=1))

        def dies(stage: str) -> None:
            raise KeyboardInterrupt  # the worker stops between claim and work

        with pytest.raises(KeyboardInterrupt):
            process.post_document(uow_factory, doc, poster=FakePoster(), pause=dies)
        taken = view(uow_factory, doc)
        assert (taken.status, taken.failure_reason) == (S.POSTING, "ERP timeout")
        later = datetime.now(UTC) + timedelta(hours=1)
        ports = process.Ports(poster=FakePoster())
        assert sweeper.sweep(uow_factory, stuck_after=timedelta(minutes=5), ports=ports, now=later).released == (doc,)
        assert view(uow_factory, doc).status == S.POSTING_FAILED

    def test_without_a_poster_posting_does_nothing(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")))
        process.match_document(uow_factory, doc)
        assert not process.post_document(uow_factory, doc, poster=None).ran
        assert view(uow_factory, doc).status == S.APPROVED

    def test_unknown_document_is_not_an_error(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        assert not validate_document(uow_factory, "nope", validator=FakeValidator(Report("valid"))).ran

    def test_a_dead_document_can_be_sent_back_to_its_stage(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)

        def boom(raw: bytes, **context: object) -> Report:
            raise TransientError("artefacts missing")

        with pytest.raises(TransientError):
            validate_document(uow_factory, doc, validator=boom, token="m1")
        process.mark_dead(uow_factory, doc, stage="validate", cause="gave up after 8 retries")
        assert process.retry_dead(uow_factory, doc, actor="admin:cli") == S.RECEIVED
        assert ("validate", doc) in pending(uow_factory)
        assert validate_document(uow_factory, doc, validator=FakeValidator(Report("valid"))).status == S.VALIDATED
        view_ = view(uow_factory, doc)
        assert [t.to_status for t in view_.history] == [
            "received",
            "validating",
            "dead",
            "received",
            "validating",
            "validated",
        ]
        assert all(f.rule != "ENGINE-STAGE-FAILED" for f in view_.findings)
        with pytest.raises(ConflictError, match="is validated, not dead") as conflict:
            process.retry_dead(uow_factory, doc, actor="admin:cli")
        assert (conflict.value.document_id, conflict.value.status) == (doc, S.VALIDATED)

    def test_retry_of_a_document_that_changes_meanwhile_is_a_conflict(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two people send the same dead document back at once: the one whose guarded write finds it no
        longer dead is told so as a conflict (a decision the state no longer allows), not as a failure."""
        doc = submitted(uow_factory, supplier)
        process.mark_dead(uow_factory, doc, stage="validate", cause="gave up after 8 retries")
        with uow_factory() as uow:
            repository = type(uow.documents)
        monkeypatch.setattr(repository, "compare_and_set", lambda self, *args, **kwargs: False)
        with pytest.raises(ConflictError, match="changed while it was being sent back") as conflict:
            process.retry_dead(uow_factory, doc, actor="admin:cli")
        assert conflict.value.document_id == doc
        assert not isinstance(conflict.value, PermanentError)  # a worker would take it for a stage that died
        assert view(uow_factory, doc).status == S.DEAD

    def test_validation_chained_with_matching_writes_validation_and_match_in_one_call(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        validator = FakeValidator(Report("valid", (WARNING,)))
        result = validate_document(uow_factory, doc, validator=validator, token="msg-1", chain=True)
        assert (result.stage, result.status) == ("match", S.APPROVED)
        final = view(uow_factory, doc)
        assert [(t.from_status, t.to_status, t.actor) for t in final.history] == THROUGH_TO_APPROVED
        assert final.history[2].detail == "1 findings, none fatal"
        assert final.findings == (WARNING,)
        assert final.match_result is not None
        assert final.match_result["outcome"] == "matched"
        assert pending(uow_factory) == [("validate", doc)]  # no message for matching: it is done
        # The same message again (a redelivery) changes nothing.
        assert not validate_document(uow_factory, doc, validator=validator, token="msg-1", chain=True).ran
        assert validator.calls == 1
        assert view(uow_factory, doc) == final

    def test_validation_chained_with_matching_sends_a_duplicate_to_exception_and_a_posting_message_when_enabled(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        first = submitted(uow_factory, supplier, "DUP-2", amount="1.00")
        second = submitted(uow_factory, supplier, "DUP-2", amount="2.00")
        for doc in (first, second):
            validate_document(
                uow_factory, doc, validator=FakeValidator(Report("valid")), poster=FakePoster(), chain=True
            )
        assert view(uow_factory, first).status == S.APPROVED
        assert view(uow_factory, second).status == S.EXCEPTION
        assert ("post", first) in pending(uow_factory)
        assert ("post", second) not in pending(uow_factory)

    def test_validation_chained_with_matching_replaces_findings_of_an_earlier_run(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        engine = Finding("ENGINE", Severity.FATAL, Layer.ENGINE, "stylesheet missing")
        validate_document(uow_factory, doc, validator=FakeValidator(Report("error", (engine,))), chain=True)
        process.retry_dead(uow_factory, doc, actor="admin:cli")
        assert view(uow_factory, doc).findings == (engine,)
        validate_document(uow_factory, doc, validator=FakeValidator(Report("valid", (WARNING, WARNING))), chain=True)
        final = view(uow_factory, doc)
        assert final.status == S.APPROVED
        assert final.findings == (WARNING, WARNING)

    def test_validation_chained_with_matching_discards_its_result_when_the_lease_was_taken_over(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        doc = submitted(uow_factory, supplier)
        t0 = datetime.now(UTC)

        def slow_validator(raw: bytes, **context: object) -> Report:
            validate_document(
                uow_factory,
                doc,
                validator=FakeValidator(Report("invalid", (FATAL,))),
                token="msg-2",
                clock=lambda: t0 + timedelta(seconds=400),
                chain=True,
            )
            return Report("valid", (WARNING,))

        poster = KeepingPoster()  # posts in the same finish: its entry goes with it
        result = validate_document(
            uow_factory,
            doc,
            validator=slow_validator,
            poster=poster,
            token="msg-1",
            clock=lambda: t0,
            lease_seconds=300,
            chain=True,
        )
        assert not result.ran
        final = view(uow_factory, doc)
        assert final.status == S.REJECTED
        assert final.findings == (FATAL,)
        assert final.match_result is None
        assert [t.to_status for t in final.history].count("matching") == 0
        assert poster.calls == [("REF-1", False, "REF-1")]  # built, then discarded with the document's change
        with uow_factory() as uow:
            assert uow.posting.entry(doc) is None

    def test_the_supplier_gets_a_response_in_the_write_that_changes_the_state(
        self, uow_factory: Callable[[], UnitOfWork], supplier: SupplierView
    ) -> None:
        rejected = submitted(uow_factory, supplier, "RSP-1")
        validator = FakeValidator(Report("invalid", (FATAL, WARNING)))
        validate_document(uow_factory, rejected, validator=validator, token="msg-1", chain=True)
        assert codes_of(uow_factory, rejected) == [("invoice-response", "AB"), ("message-level-response", "RE")]
        assert not validate_document(uow_factory, rejected, validator=validator, token="msg-1", chain=True).ran
        assert codes_of(uow_factory, rejected) == [
            ("invoice-response", "AB"),
            ("message-level-response", "RE"),
        ]  # a redelivery adds none
        [ab, mlr] = responses.list_responses(uow_factory(), rejected)
        assert b"<cbc:ResponseCode>AB</cbc:ResponseCode>" in responses.response_xml(uow_factory(), rejected, ab.id)
        xml = responses.response_xml(uow_factory(), rejected, mlr.id, supplier_id=supplier.id)
        assert b"<cbc:Description>[BR-01] specification identifier missing</cbc:Description>" in xml
        assert xml.count(b"<cac:LineResponse>") == 1  # the fatal finding only, not the warning

        first = submitted(uow_factory, supplier, "RSP-2", amount="1.00")
        second = submitted(uow_factory, supplier, "RSP-2", amount="2.00")
        for doc in (first, second):
            validate_document(uow_factory, doc, validator=FakeValidator(Report("valid")), chain=True)
        assert codes_of(uow_factory, first) == [("invoice-response", "AB"), ("invoice-response", "AP")]
        assert codes_of(uow_factory, second) == [("invoice-response", "AB"), ("invoice-response", "IP")]
        [_, ip] = responses.list_responses(uow_factory(), second)
        xml = responses.response_xml(uow_factory(), second, ip.id)
        assert b"<cbc:ResponseCode>IP</cbc:ResponseCode>" in xml
        with pytest.raises(NotFoundError):
            responses.response_xml(uow_factory(), first, ip.id)  # another document's response
        with pytest.raises(NotFoundError):
            responses.list_responses(uow_factory(), first, supplier_id="someone-else")


class TestStagesInMemory(StageTests):
    """On the store's in-memory twin."""
