"""The stage engine: stages declared once in a registry, and one runner that takes a document
through any of them.

A stage declares the states it starts from, its working state, its outcomes, the state the
sweeper sends a document back to when its lease runs out, and its handler. Everything else is
derived from the registry: which message follows which state, the actors, the sweeper's and the
metrics' state sets, where a dead document resumes. Adding a stage is one ``Stage`` and one
handler (``docs/architecture.md`` shows one).

Every stage runs the same protocol, so that a lost or repeated message changes nothing:

1. **claim** (one write): if the document is in a state the stage starts from, move it to the
   working state under a lease (a token, the message id, which dramatiq keeps across retries,
   and an expiry). A document already in the working state may be taken again by the same
   token, or by anyone once its lease has run out. Anything else means the stage is not called
   for, and the call returns without effect.
2. **work**: the handler, outside any transaction (validation may take seconds), the lease
   extended every third of its length meanwhile (``leases.keep``), so that the sweeper takes back
   only the documents of workers that stopped. It returns an ``Outcome``: the states the document
   moves along, column values, findings, extra rows.
3. **finish** (one write, guarded by the working state and the token): the outcome, its
   transitions, findings and rows, and the message for the next stage. If the guard fails,
   another worker finished or took over, and the result is discarded: no effect is written twice.

**At once.** A stage declared ``at_once`` does no slow work and needs no bytes. The runner runs it
inside the finish of the stage before it (validation's finish records matching's outcome too,
saving a trip through outbox, broker and claim), and a message for it finds a document waiting
in its start state and writes the outcome in one transaction, with no claim. Any pair of stages
can use this; ``chain=False`` turns it off (fault drills stop a worker between two stages). A
stage may leave it to the ports (``at_once`` and ``in_finish`` as a ``Callable[[P], bool]``):
posting runs at once, in the finish that approves the document, only when its connector needs
no slow I/O (the pull feed).

The writes are ``store.writes.DocumentChange`` descriptions: one statement each on PostgreSQL,
the same description part by part on SQLite.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from einvoice.domain.findings import Finding
from einvoice.domain.states import DocumentStatus
from einvoice.services import DocumentView, document_view, finding_values, leases
from einvoice.store import UnitOfWork
from einvoice.store.writes import ANYONE, Anyone, DocumentChange, Read, Step

log = logging.getLogger(__name__)

S = DocumentStatus
Clock = Callable[[], datetime]
P = TypeVar("P")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Outcome:
    """What a handler decided: the states the document moves along from the working state
    (``path``, each with a detail for its transition; the last is where it rests), the column
    values that record the result, its findings (None: leave them), and extra rows by table."""

    path: tuple[tuple[str, str | None], ...]
    values: Mapping[str, Any] = field(default_factory=dict)
    findings: Sequence[Finding] | None = None
    rows: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    #: Raised once the outcome is written (a posting that failed for now: recorded, then retried).
    retry: Exception | None = None
    #: The document rests where the path leaves it, with no message for the stage that starts
    #: there (posting sends it back to ``approved`` until its institution's books are set up).
    #: Only into a state its stage declares in ``holds``.
    hold: bool = False
    #: Work done in the finish's transaction, before the document's write, with the unit of work
    #: it is written in (posting consumes the commitment's reservation as the document is
    #: ``posted``): undone with it when the guard fails.
    effects: tuple[Callable[[UnitOfWork], None], ...] = ()
    #: What the handler learnt that the stages run at once after it, in the same finish, may use
    #: (``Work.before.known``: matching's commitment, read under its lock); not written.
    known: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.path[-1][0]

    def then(self, more: Outcome) -> Outcome:
        """This outcome followed by ``more`` (a stage run at once after it)."""
        return Outcome(
            self.path + more.path,
            {**self.values, **more.values},
            more.findings if more.findings is not None else self.findings,
            {**self.rows, **more.rows},
            more.retry,
            more.hold,
            self.effects + more.effects,
            {**self.known, **more.known},
        )


@dataclass(frozen=True)
class Work(Generic[P]):
    """What a handler works on: the document as claimed, its bytes (for stages that need them),
    and the ports the runtime wired in. A stage declared ``in_finish`` also gets ``uow``, the unit
    of work its finish is written in (what it reads there, and the locks it takes, hold until the
    document's write commits), and ``before``, the outcome of the stages run before it in the same
    finish, not written yet (validation's parsed document)."""

    document: DocumentView
    raw: bytes | None
    ports: P
    uow: UnitOfWork | None = None
    before: Outcome | None = None


@dataclass(frozen=True)
class Stage(Generic[P]):
    """One stage of the pipeline, declared once."""

    name: str  # also the outbox action, and the actor is f"{name}_document"
    starts_from: frozenset[str]
    working: str
    outcomes: frozenset[str]
    #: Where a document held in ``working`` goes back to when its lease ran out (and where a
    #: document that died there resumes).
    resume: str
    handler: Callable[[Work[P]], Outcome]
    needs_raw: bool = False
    #: Runs inside the finish of the stage before it, and a message for it writes its outcome
    #: with no claim: always (True), or as the ports decide (posting, when its connector needs no
    #: slow I/O: the pull feed, where keeping the entry is delivering it).
    at_once: bool | Callable[[P], bool] = False
    #: Whether the ports allow the stage at all (posting needs an ERP connector); a document
    #: waiting for a stage that cannot run rests there.
    runs_with: Callable[[P], bool] = field(default=lambda ports: True)
    #: States the handler may hold a document in (an ``Outcome`` with ``hold``), each one of its
    #: ``starts_from`` and ``outcomes``, or its ``working`` state (then with no lease: the work is
    #: done, its confirmation comes from outside, as the ERP's acknowledgement of a posting does):
    #: the document rests there with its ``failure_reason``, no message is sent and the sweeper
    #: leaves it alone, until a person, a setting or a confirmation moves it on.
    holds: frozenset[str] = frozenset()
    #: The handler runs inside the finish's transaction, with ``Work.uow``: it may read and lock
    #: rows its outcome depends on (matching locks the commitments it reserves on). For fast
    #: handlers only: the transaction is open while it runs. True, or as the ports decide.
    in_finish: bool | Callable[[P], bool] = False
    #: For an ``in_finish`` handler: queue the reads it will make (``store.read_ahead``: the
    #: approval limits, the institution's books), called with ``Work.uow`` before the first stage
    #: of the finish reads, so that they go with that stage's first round trip instead of one each.
    reads_ahead: Callable[[Work[P]], None] | None = None

    def runs_at_once(self, ports: P) -> bool:
        """Whether, with ``ports``, the stage runs at once (``at_once``)."""
        return self.at_once(ports) if callable(self.at_once) else self.at_once

    def runs_in_finish(self, ports: P) -> bool:
        """Whether, with ``ports``, the handler runs in the finish's transaction (``in_finish``)."""
        return self.in_finish(ports) if callable(self.in_finish) else self.in_finish

    @property
    def actor(self) -> str:
        """Who the history names for the transitions this stage makes."""
        return f"worker:{self.name}"

    @property
    def actor_name(self) -> str:
        """The dramatiq actor that runs this stage (what ``messaging`` addresses its messages to)."""
        from einvoice.messaging import actor_name

        return actor_name(self.name)


class StageRegistry(Generic[P]):
    """The stages, and what is derived from them."""

    def __init__(self, stages: Iterable[Stage[P]]) -> None:
        self.stages: tuple[Stage[P], ...] = tuple(stages)
        self.by_name = {stage.name: stage for stage in self.stages}
        self.by_working = {stage.working: stage for stage in self.stages}
        self._starting: dict[str, Stage[P]] = {}
        for stage in self.stages:
            for state in stage.starts_from:
                if state in self._starting:
                    raise ValueError(f"two stages start from {state}: {self._starting[state].name}, {stage.name}")
                self._starting[state] = stage
        if len(self.by_name) != len(self.stages) or len(self.by_working) != len(self.stages):
            raise ValueError("stage names and working states must be unique")
        for stage in self.stages:
            if not stage.holds <= (stage.starts_from & stage.outcomes) | {stage.working}:
                raise ValueError(
                    f"{stage.name} holds documents only in states it starts from and ends in, or its working state"
                )

    def __getitem__(self, name: str) -> Stage[P]:
        return self.by_name[name]

    def next_stage(self, state: str, ports: P) -> Stage[P] | None:
        """The stage a document in ``state`` waits for, when the ports let it run."""
        stage = self._starting.get(state)
        return stage if stage is not None and stage.runs_with(ports) else None

    def waiting_states(self, ports: P) -> frozenset[str]:
        """States in which a document waits for a stage that will run."""
        return frozenset(s for stage in self.stages if stage.runs_with(ports) for s in stage.starts_from)

    @property
    def working_states(self) -> frozenset[str]:
        return frozenset(self.by_working)

    @property
    def holding_states(self) -> frozenset[str]:
        """States in which a document with a ``failure_reason`` rests, held by its stage: the
        sweeper sends it no message (in a working state: held with no lease, never taken back)."""
        return frozenset(s for stage in self.stages for s in stage.holds)

    def resume_point(self, state: str) -> tuple[str, Stage[P]] | None:
        """Where a document that stopped in ``state`` (a dead one, or one whose lease ran out)
        goes back to, and the stage it then waits for."""
        if state in self.by_working:
            stage = self.by_working[state]
            return stage.resume, stage
        if state in self._starting:
            return state, self._starting[state]
        return None

    def at_once_after(self, stage: Stage[P], ports: P | None = None) -> list[Stage[P]]:
        """The ``at_once`` stages a message for ``stage`` may have carried a document on to with
        ``ports`` (without: every one that may run at once with some ports)."""
        found: list[Stage[P]] = []
        states = set(stage.outcomes)
        while True:
            starting = (self._starting[s] for s in states if s in self._starting)
            if ports is None:
                nexts = {n for n in starting if n.at_once is not False}
            else:
                nexts = {n for n in starting if n.runs_at_once(ports)}
            nexts -= set(found)
            if not nexts:
                return found
            found += sorted(nexts, key=self.stages.index)
            states = {o for n in nexts for o in n.outcomes}

    def owner(self, state: str) -> Stage[P] | None:
        """The stage a document in ``state`` is waiting for or held by."""
        return self.by_working.get(state) or self._starting.get(state)


@dataclass(frozen=True, slots=True)
class StageResult:
    """What a stage call did. ``ran`` is False when the state did not call for the stage."""

    document_id: str
    stage: str
    ran: bool
    status: str | None = None  # the state the document was left in, when known
    note: str | None = None
    #: The document as the stage read it when it claimed it.
    document: DocumentView | None = field(default=None, compare=False, repr=False)
    #: The action of the message the finish wrote to the outbox for the stage after, if any
    #: (the caller may ask its relay to hand it to the broker now rather than at its next poll).
    sent: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Runner(Generic[P]):
    """Runs the stages of ``registry`` with ``ports``: claim, work, finish."""

    registry: StageRegistry[P]
    uow_factory: Callable[[], UnitOfWork]
    ports: P
    clock: Clock = utcnow
    lease: timedelta = timedelta(seconds=300)
    #: Run ``at_once`` stages inside the finish before them (off for fault drills).
    chain: bool = True
    #: Called with the stage's name between claim and work (fault drills).
    pause: Callable[[str], None] | None = None

    def run(self, name: str, document_id: str, *, token: str | None = None) -> StageResult:
        """Run stage ``name`` for the document; return what it did."""
        stage = self.registry[name]
        if not stage.runs_with(self.ports):  # posting with no ERP connector: the document rests
            return StageResult(document_id, stage.name, False, None, f"nothing wired to run {stage.name}")
        if stage.runs_at_once(self.ports) and self.pause is None:
            done = self._at_once(stage, document_id)
            if done is not None:
                return done
        token = token or new_token()
        claim = self._claim(stage, document_id, token)
        if isinstance(claim, StageResult):
            return claim
        document, raw = claim
        if self.pause is not None:
            self.pause(stage.name)
        outcome: Outcome | None = None
        if not stage.runs_in_finish(self.ports):
            # The lease is extended every third of it while the handler works, so the sweeper
            # takes back only the documents of workers that stopped.
            with leases.keeper().keep(
                self.uow_factory,
                document_id=document_id,
                working=stage.working,
                token=token,
                lease_seconds=self.lease.total_seconds(),
            ):
                outcome = stage.handler(Work(document, raw, self.ports))
        finished = self._complete(stage, document, outcome, (stage.working,), [], holder=token, raw=raw)
        if finished is None:
            log.info("%s of %s: claim lost, result discarded", stage.name, document_id)
            return StageResult(document_id, stage.name, False, None, "claim lost")
        return self._result(document, *finished)

    # --- the parts ------------------------------------------------------------------------------

    def _complete(
        self,
        stage: Stage[P],
        document: DocumentView,
        outcome: Outcome | None,
        expected: tuple[str, ...],
        lead: list[Step],
        *,
        holder: str | Anyone | None = ANYONE,
        raw: bytes | None = None,
    ) -> tuple[list[Step], Outcome, str | None] | None:
        """The finish: in one unit of work, the handler of an ``in_finish`` stage (``outcome`` None),
        the ``at_once`` stages that follow, the outcome's effects, and the guarded write of it all
        (after the transitions ``lead``); the transitions, the outcome and the action of the
        message for the stage after (None: none) written, or None when the guard failed and
        nothing was. When nothing before it read or locked, the write is
        committed as it runs (one statement on PostgreSQL)."""
        with self.uow_factory() as uow:
            if outcome is None:
                self._read_ahead([stage], Work(document, raw, self.ports, uow))
                outcome = stage.handler(Work(document, raw, self.ports, uow))
            steps, outcome, message = self._onward(stage, document, outcome, uow)
            for effect in outcome.effects:
                effect(uow)
            change = self._finish(document.id, expected, [*lead, *steps], outcome, message, holder=holder)
            if not uow.documents.write(change, commit=True).changed:
                return None
            uow.commit()
        return [*lead, *steps], outcome, message

    def _claim(self, stage: Stage[P], document_id: str, token: str) -> tuple[DocumentView, bytes | None] | StageResult:
        now = self.clock()
        lease = {"lease_token": token, "lease_expires_at": now + self.lease}
        read: Read = "row+raw" if stage.needs_raw else "row"

        def take(waiting: str) -> DocumentChange:
            """The claim of a document waiting in ``waiting``: into the working state, under our lease."""
            values = {"status": stage.working, "status_changed_at": now, **lease}
            return DocumentChange(
                document_id, (waiting,), values, now, steps=(Step(waiting, stage.working, stage.actor),), read=read
            )

        with self.uow_factory() as uow:
            # The usual case in one write: the document waits in the one state the stage starts
            # from (with several, the transition must name which, so the general path reads it).
            if len(stage.starts_from) == 1:
                (waiting,) = stage.starts_from
                taken = uow.documents.write(take(waiting), commit=True)
                if taken.changed:
                    uow.commit()
                    return document_view(taken.row), taken.raw
            row = uow.documents.get(document_id)
            if row is None:
                return StageResult(document_id, stage.name, False, None, "no such document")
            status = row.status
            if status in stage.starts_from:
                change = take(status)
            elif status == stage.working:
                held_by_us = row.lease_token == token
                expired = row.lease_expires_at is None or row.lease_expires_at <= now
                if not (held_by_us or expired):
                    return StageResult(document_id, stage.name, False, status, "another worker holds the document")
                detail = None if held_by_us else leases.TAKEN_OVER_DETAIL
                change = DocumentChange(
                    document_id,
                    (status,),
                    lease,
                    now,
                    steps=() if held_by_us else (Step(status, stage.working, stage.actor, detail),),
                    holder=row.lease_token,
                    read=read,
                )
            else:
                return StageResult(document_id, stage.name, False, status, f"state {status} does not call for it")
            taken = uow.documents.write(change)
            if not taken.changed:
                return StageResult(document_id, stage.name, False, None, "another worker claimed it first")
            uow.commit()
        return document_view(taken.row), taken.raw

    def _at_once(self, stage: Stage[P], document_id: str) -> StageResult | None:
        """Run an ``at_once`` stage for a document waiting in its start state, in one write; None
        when it is not waiting there (the caller takes the claim path, which says why or resumes
        a held claim)."""
        with self.uow_factory() as uow:
            row = uow.documents.get(document_id)
            if row is None or row.status not in stage.starts_from:
                return None
            document = document_view(row)
        waiting = document.status
        lead = [Step(waiting, stage.working, stage.actor)]
        outcome = None if stage.runs_in_finish(self.ports) else stage.handler(Work(document, None, self.ports))
        finished = self._complete(stage, document, outcome, (waiting,), lead)
        return None if finished is None else self._result(document, *finished)

    @staticmethod
    def _result(document: DocumentView, steps: list[Step], outcome: Outcome, sent: str | None) -> StageResult:
        """What a finished stage did (its retry raised once written: recorded, then retried)."""
        if outcome.retry is not None:
            raise outcome.retry
        stage = steps[-1].actor.removeprefix("worker:")
        return StageResult(document.id, stage, True, outcome.status, None, document, sent)

    def _onward(
        self, stage: Stage[P], document: DocumentView, outcome: Outcome, uow: UnitOfWork
    ) -> tuple[list[Step], Outcome, str | None]:
        """The transitions of ``outcome`` (from ``stage``'s working state) and the outcome itself,
        extended through the ``at_once`` stages that follow it (those ``in_finish`` with ``uow``,
        the finish's); the message for the stage after."""
        steps = _steps(stage.working, stage.actor, outcome.path)
        follower = self._follower(stage, outcome)
        if self.chain and follower is not None and outcome.retry is None:
            ahead = self.registry.at_once_after(stage, self.ports)
            self._read_ahead(
                [s for s in ahead if s.runs_in_finish(self.ports)], Work(document, None, self.ports, uow, outcome)
            )
        while self.chain and follower is not None and follower.runs_at_once(self.ports) and outcome.retry is None:
            given = uow if follower.runs_in_finish(self.ports) else None
            more = follower.handler(Work(document, None, self.ports, given, outcome))
            steps += [Step(outcome.status, follower.working, follower.actor)]
            steps += _steps(follower.working, follower.actor, more.path)
            outcome = outcome.then(more)
            follower = self._follower(follower, outcome)
        return steps, outcome, (follower.name if follower is not None else None)

    @staticmethod
    def _read_ahead(stages: Iterable[Stage[P]], work: Work[P]) -> None:
        """Let ``stages`` queue the reads their handlers will make in this finish (``reads_ahead``)."""
        for stage in stages:
            if stage.reads_ahead is not None:
                stage.reads_ahead(work)

    def _follower(self, stage: Stage[P], outcome: Outcome) -> Stage[P] | None:
        """The stage a document left by ``outcome`` of ``stage`` goes on to; None when it rests
        (held where the stage may hold it, or no stage runs from there)."""
        if outcome.hold:
            if outcome.status not in stage.holds:
                raise ValueError(f"{stage.name} does not hold documents in {outcome.status}")
            return None
        return self.registry.next_stage(outcome.status, self.ports)

    def _finish(
        self,
        document_id: str,
        expected: tuple[str, ...],
        steps: Sequence[Step],
        outcome: Outcome,
        message: str | None,
        *,
        holder: str | Anyone | None = ANYONE,
    ) -> DocumentChange:
        """The write that records ``outcome``: the document leaves ``expected`` (held by ``holder``)
        for the outcome's state, its lease freed."""
        now = self.clock()
        values = {**outcome.values, "status": outcome.status, "status_changed_at": now}
        values |= {"lease_token": None, "lease_expires_at": None}
        return DocumentChange(
            document_id,
            expected,
            values,
            now,
            steps=tuple(steps),
            holder=holder,
            findings=None if outcome.findings is None else [finding_values(f) for f in outcome.findings],
            message=message,
            rows=outcome.rows,
        )


def _steps(start: str, actor: str, path: Sequence[tuple[str, str | None]]) -> list[Step]:
    """The transitions along ``path`` from ``start``, each by ``actor``."""
    steps: list[Step] = []
    previous = start
    for status, detail in path:
        steps.append(Step(previous, status, actor, detail))
        previous = status
    return steps
