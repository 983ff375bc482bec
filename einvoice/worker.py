"""The pipeline's dramatiq actors (``einvoice worker``, in ``einvoice.cli.run``, runs them).

Actors are thin: a document id in, a ``services.process`` call, nothing else. They are declared
on a broker at run time (``declare_actors``), never at import, so importing this module builds
nothing. The message id is the stage's lease token: dramatiq keeps it across retries, so a retry
resumes its own claim, while a message sent again by the sweeper is a new claimant.

Errors: ``PermanentError`` records ``dead`` at once. Anything else (database or broker down, a
validator that could not run, a bug) propagates and dramatiq retries with exponential backoff;
when retries run out, ``stage_gave_up`` records ``dead`` with the last error.

Test hook for fault drills: ``EINVOICE_FAULT_PAUSE=validate=30`` (``Settings.fault_pause``) makes
the validate stage sleep 30 seconds after claiming its document (so a test can kill the process
mid-stage).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from einvoice.errors import PermanentError, TransientError
from einvoice.logs import redact
from einvoice.matching import MatchConfig
from einvoice.messaging import GAVE_UP_ACTOR, QUEUE, WEBHOOK_ACTOR
from einvoice.services import process
from einvoice.services.stages import Runner, StageRegistry, StageResult
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.ports import WebhookStore

log = logging.getLogger(__name__)


@dataclass
class Pipeline:
    """What the actors need: the store, the stage registry and the ports its handlers use."""

    uow_factory: Callable[[], UnitOfWork]
    settings: Settings
    validator: process.Validator
    poster: process.Poster | None = None
    approval: process.ApprovalPolicy = process.approve_within_limits
    parser: process.Parser | None = None
    registry: StageRegistry[process.Ports] = process.REGISTRY
    #: The suppliers' webhooks (``services.webhooks``); None: no ``webhook_deliver`` actor.
    webhooks: WebhookStore | None = None
    #: Called after a stage wrote a message to the outbox (the runtime wakes its relay, at most
    #: every ``RELAY_WAKE_SECONDS``); None: the relay finds it at its next poll.
    on_sent: Callable[[], None] | None = None

    @property
    def ports(self) -> process.Ports:
        return process.Ports(
            self.validator, self.poster, self.approval, self.parser, MatchConfig.from_settings(self.settings)
        )

    def runner(self) -> Runner[process.Ports]:
        """A runner for one message."""
        pause = fault_pause(self.settings.fault_pause)
        return process.runner(
            self.uow_factory,
            self.ports,
            lease_seconds=self.settings.stuck_after_seconds,
            pause=pause,
            chain=pause is None,  # a drill stops a worker between two stages: each in its own write
            registry=self.registry,
        )


def fault_pause(spec: str | None) -> Callable[[str], None] | None:
    """The fault drills' pause for ``STAGE=SECONDS`` (``Settings.fault_pause``): after claiming a
    document for that stage, sleep that long. None without a spec."""
    if not spec or "=" not in spec:
        return None
    stage, _, seconds = spec.partition("=")

    def pause(current: str) -> None:
        if current == stage:
            log.warning("fault drill: %s pausing %s s", current, seconds)
            time.sleep(float(seconds))

    return pause


def _token() -> str | None:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else None


def run_stage(pipeline: Pipeline, stage: str, document_id: str) -> StageResult | None:
    """Run one stage for ``document_id`` as an actor does (used by the actors and by tests); the
    stages the registry runs at once after it run in its finish.

    What goes wrong is logged and recorded without document content (``logs.redact``): a
    PermanentError records ``dead`` at once; anything else is raised again, redacted, as a
    TransientError for dramatiq to retry (its log of the retry, and the ``dead`` reason when
    retries run out, quote that)."""
    try:
        result = pipeline.runner().run(stage, document_id, token=_token())
    except PermanentError as exc:
        cause = redact(str(exc))
        log.error(
            "%s of %s failed permanently: %s",
            stage,
            document_id,
            cause,
            extra={"document_id": document_id, "stage": stage, "outcome": "dead"},
        )
        mark_dead(pipeline, document_id, stage=stage, cause=cause)
        return None
    except Exception as exc:
        cause = redact(f"{type(exc).__name__}: {exc}")
        where = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)[-4:])).rstrip()
        log.warning(
            "%s of %s failed, to be retried: %s\n%s",
            stage,
            document_id,
            cause,
            where,
            extra={"document_id": document_id, "stage": stage, "outcome": "retry"},
        )
        raise TransientError(cause) from None
    if result.sent is not None and pipeline.on_sent is not None:
        pipeline.on_sent()
    outcome = result.status if result.ran else f"skipped ({result.note})"
    log.info(
        "%s %s: %s", stage, document_id, outcome, extra={"document_id": document_id, "stage": stage, "outcome": outcome}
    )
    return result


def mark_dead(pipeline: Pipeline, document_id: str, *, stage: str, cause: str) -> bool:
    """Record ``dead`` for the stage the message was for, or for a stage that runs at once after
    it, when the message had carried the document on to that one."""
    registry = pipeline.registry
    for name in (stage, *(s.name for s in registry.at_once_after(registry[stage], pipeline.ports))):
        if process.mark_dead(pipeline.uow_factory, document_id, stage=name, cause=cause, registry=registry):
            return True
    return False


def declare_actors(broker: dramatiq.Broker, pipeline: Pipeline) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare an actor per stage of the registry (``<stage>_document``) and the actor that records
    what retries could not do, on ``broker``; return them by name."""
    options: dict[str, Any] = {"queue_name": QUEUE, "broker": broker, "on_retry_exhausted": GAVE_UP_ACTOR}
    stage_of_actor = {stage.actor_name: stage.name for stage in pipeline.registry.stages}

    def stage_gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        stage = stage_of_actor.get(message.get("actor_name", ""))
        args = message.get("args") or []
        if stage is None or not args:
            log.error("gave up on an unknown message: %r", message)
            return
        traceback = (message.get("options") or {}).get("traceback") or ""
        last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
        cause = f"gave up after {retry_info.get('retries', '?')} retries: {redact(last_line)}"
        mark_dead(pipeline, str(args[0]), stage=stage, cause=cause)

    def stage_actor(stage: str) -> Callable[[str], None]:
        def run(document_id: str) -> None:
            run_stage(pipeline, stage, document_id)

        run.__name__ = f"{stage}_document"
        return run

    actors: dict[str, dramatiq.Actor[Any, Any]] = {
        stage.actor_name: dramatiq.actor(actor_name=stage.actor_name, **options)(stage_actor(stage.name))
        for stage in pipeline.registry.stages
    }
    actors[GAVE_UP_ACTOR] = dramatiq.actor(actor_name=GAVE_UP_ACTOR, queue_name=QUEUE, broker=broker)(stage_gave_up)
    if pipeline.webhooks is not None:
        store, settings = pipeline.webhooks, pipeline.settings

        def webhook_deliver(delivery_id: str) -> None:
            """One attempt of a webhook delivery; its own retries (``services.webhooks``), not dramatiq's."""
            from einvoice.services import webhooks

            webhooks.deliver(
                store,
                delivery_id,
                webhooks.http_post(settings.webhook_timeout_seconds),
                max_attempts=settings.webhook_max_attempts,
                backoff_seconds=settings.webhook_backoff_seconds,
            )

        actors[WEBHOOK_ACTOR] = dramatiq.actor(
            actor_name=WEBHOOK_ACTOR, queue_name=QUEUE, broker=broker, max_retries=0
        )(webhook_deliver)
    return actors
