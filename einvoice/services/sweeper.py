"""The sweeper: finds documents the pipeline has left lying and sends them on again.

Two cases:
- waiting in a state that calls for a stage that will run (the registry's waiting states with
  the wired ports: ``received``, ``validated``, ``posting_failed``, and ``approved`` when posting
  is on) for longer than ``stuck_after`` with no message written for them in that time: a new
  outbox row for the stage (the message was lost, or the broker dropped it);
- held in a working state by a lease that ran out (the worker died mid-stage): moved back to the
  stage's ``resume`` state, recorded with the actor ``sweeper``, and sent again. Should the first
  worker still be alive, its result is discarded by the guard of its finish. (A working stage
  extends its lease as it goes, ``leases.keep``, so a lease runs out only when its worker
  stopped.) A document whose validation was abandoned so before is not sent a third time: it
  ends ``rejected`` with a ``VALIDATION-LIMIT`` finding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from einvoice.domain.states import DocumentStatus
from einvoice.services import finding_values, leases
from einvoice.services.process import REGISTRY, VALIDATE, Ports
from einvoice.services.stages import StageRegistry
from einvoice.store import UnitOfWork
from einvoice.store.writes import Step

log = logging.getLogger(__name__)

ACTOR = "sweeper"
S = DocumentStatus


@dataclass(frozen=True, slots=True)
class SweepResult:
    resent: tuple[str, ...]  # ids sent again from a waiting state
    released: tuple[str, ...]  # ids taken back from a working state with an expired lease
    given_up: tuple[str, ...] = ()  # ids rejected: their validation was abandoned too often

    @property
    def total(self) -> int:
        return len(self.resent) + len(self.released) + len(self.given_up)


SENT_MESSAGES_KEPT = timedelta(days=7)


def purge_sent_messages(
    uow_factory: Callable[[], UnitOfWork], *, keep: timedelta = SENT_MESSAGES_KEPT, now: datetime | None = None
) -> int:
    """Delete outbox rows sent longer than ``keep`` ago (the sweeper only looks back
    ``stuck_after``); return how many."""
    now = now or datetime.now(UTC)
    with uow_factory() as uow:
        count = uow.outbox.purge_sent(before=now - keep)
        uow.commit()
    return count


def sweep(
    uow_factory: Callable[[], UnitOfWork],
    *,
    stuck_after: timedelta,
    ports: Ports | None = None,
    registry: StageRegistry[Ports] = REGISTRY,
    now: datetime | None = None,
    limit: int = 500,
) -> SweepResult:
    """Send stuck documents on again (through the outbox); return what was done. ``ports``: what
    the workers have wired (a document waiting for a stage that cannot run rests)."""
    now = now or datetime.now(UTC)
    ports = ports or Ports()
    with uow_factory() as uow:
        candidates = [
            (row.id, row.status, row.lease_token)
            for row in uow.documents.stuck(
                idle_statuses=registry.waiting_states(ports),
                idle_before=now - stuck_after,
                working_statuses=registry.working_states,
                now=now,
                limit=limit,
                # Held by their stage with a reason (posting waiting for an institution's books):
                # a person or a setting sends them on, not a message.
                resting_with_reason=registry.holding_states,
            )
        ]
    resent: list[str] = []
    released: list[str] = []
    given_up: list[str] = []
    for document_id, status, lease_token in candidates:
        with uow_factory() as uow:
            if status == VALIDATE.working and _give_up(uow, document_id, lease_token, now):
                uow.commit()
                given_up.append(document_id)
                continue
            resume = registry.resume_point(status)
            if resume is None:
                continue
            back_to, stage = resume
            if status in registry.working_states:
                if not uow.documents.compare_and_set(
                    document_id,
                    expected=[status],
                    holder=lease_token,
                    values={"status": back_to, "status_changed_at": now, "lease_token": None, "lease_expires_at": None},
                    at=now,
                    steps=[
                        Step(
                            status, back_to, ACTOR, f"{stage.name} did not finish before its lease ran out; sent again"
                        )
                    ],
                    message=stage.name,
                ):
                    continue
                released.append(document_id)
            else:
                last = uow.outbox.last_written_at(document_id)
                if last is not None and last > now - stuck_after:
                    continue  # sent recently: give the pipeline its time
                row = uow.documents.get(document_id)
                if row is None or row.status != status:
                    continue
                uow.outbox.add(document_id, stage.name, now=now)
                resent.append(document_id)
            uow.commit()
    if resent or released or given_up:
        log.warning(
            "sweeper: sent %d waiting and %d abandoned documents again, rejected %d abandoned too often",
            len(resent),
            len(released),
            len(given_up),
        )
    return SweepResult(tuple(resent), tuple(released), tuple(given_up))


def _give_up(uow: UnitOfWork, document_id: str, lease_token: str | None, now: datetime) -> bool:
    """Reject a document held in ``validating`` by a lease that ran out when its validation was
    abandoned before (this makes ``ABANDONED_VALIDATIONS_ALLOWED``); False when it may go again."""
    abandoned = leases.validations_abandoned(uow, document_id) + 1
    if abandoned < leases.ABANDONED_VALIDATIONS_ALLOWED:
        return False
    finding = leases.abandoned_finding(abandoned)
    return uow.documents.compare_and_set(
        document_id,
        expected=[VALIDATE.working],
        holder=lease_token,
        values={"status": S.REJECTED, "status_changed_at": now, "lease_token": None, "lease_expires_at": None},
        at=now,
        steps=[Step(VALIDATE.working, S.REJECTED, ACTOR, finding.message)],
        findings=[finding_values(finding)],
    )
