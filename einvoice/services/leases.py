"""Leases kept alive while a stage works, and what happens to work that outlives them anyway.

A stage holds its document under a lease (``stages.Runner`` claims it); the sweeper takes back documents
whose lease ran out, so that a worker that died does not hold one for ever. Work that is merely
slow must not look dead: while a stage works, ``keep`` extends its lease every third of the lease
from one thread per process (it needs the interpreter only for a moment, and the validation
itself runs in a subprocess, so the beat is never held up). Before this, a validation longer
than the lease was sent again and taken over: with a 30 s lease a 4,000-line document was
claimed 5 times in 150 s and never finished.

A lease that runs out all the same means the worker stopped (killed, or its machine gone). A
document whose validation was abandoned that way twice is not tried a third time: it ends
``rejected`` with a ``VALIDATION-LIMIT`` finding (``validation_abandoned``), since a document
that takes its workers down is the document's problem.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.store import UnitOfWork

log = logging.getLogger(__name__)

#: Validations abandoned (their lease ran out) before a document is no longer sent again.
ABANDONED_VALIDATIONS_ALLOWED = 2
#: How a lease that ran out on validation is recorded (sweeper and claim take-over).
RELEASED_DETAIL = "validate did not finish before its lease ran out; sent again"
TAKEN_OVER_DETAIL = "taken over: the previous worker's lease ran out"


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    document_id: str = field(compare=False)
    working: str = field(compare=False)
    token: str = field(compare=False)
    lease: timedelta = field(compare=False)
    uow_factory: Callable[[], UnitOfWork] = field(compare=False)
    active: bool = field(default=True, compare=False)


class LeaseKeeper:
    """Extends the leases of the stages at work in this process, from one daemon thread."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._heap: list[_Held] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self.beats = 0  # leases extended (for tests and logs)

    @contextlib.contextmanager
    def keep(
        self,
        uow_factory: Callable[[], UnitOfWork],
        *,
        document_id: str,
        working: str,
        token: str,
        lease_seconds: float,
    ) -> Iterator[None]:
        """Extend the lease on ``document_id`` (held in ``working`` under ``token``) by
        ``lease_seconds`` every third of it until the block ends. A lease found lost (another
        worker took the document) is no longer extended; the stage's finish finds it lost."""
        held = _Held(
            time.monotonic() + lease_seconds / 3,
            next(self._seq),
            document_id,
            working,
            token,
            timedelta(seconds=lease_seconds),
            uow_factory,
        )
        with self._condition:
            heapq.heappush(self._heap, held)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
            elif self._heap[0] is held:
                self._condition.notify()
        try:
            yield
        finally:
            with self._condition:
                held.active = False  # dropped from the heap when it comes up

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                held = heapq.heappop(self._heap)
            if self._extend(held):
                with self._condition:
                    if held.active:
                        held.due = time.monotonic() + held.lease.total_seconds() / 3
                        heapq.heappush(self._heap, held)

    def _extend(self, held: _Held) -> bool:
        try:
            with held.uow_factory() as uow:
                now = self._clock()
                extended = uow.documents.compare_and_set(
                    held.document_id,
                    expected=[held.working],
                    values={"lease_expires_at": now + held.lease},
                    at=now,
                    holder=held.token,
                )
                uow.commit()
        except Exception:  # the database is away: try again at the next beat
            log.warning("could not extend the lease on %s", held.document_id, exc_info=True)
            return True
        if extended:
            self.beats += 1
            log.debug("lease on %s extended", held.document_id)
        return extended


_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def keeper() -> LeaseKeeper:
    """The process's lease keeper (its thread starts with the first lease it keeps)."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = LeaseKeeper()
        return _keeper


def validations_abandoned(uow: UnitOfWork, document_id: str) -> int:
    """How many validations of the document ended with their lease running out (taken back by
    the sweeper, or taken over by another worker)."""
    return sum(
        1
        for t in uow.documents.transitions(document_id)
        if (t.from_status == "validating" and t.actor == "sweeper" and t.to_status == "received")
        or (t.to_status == "validating" and (t.detail or "").startswith("taken over"))
    )


def abandoned_finding(count: int) -> Finding:
    return Finding(
        rule="VALIDATION-LIMIT",
        severity=Severity.FATAL,
        layer=Layer.ENGINE,
        message=(
            f"validation stopped: it was abandoned {count} times (its worker stopped before it finished,"
            " its lease ran out); the document is not tried again"
        ),
    )
