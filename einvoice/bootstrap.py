"""The one place that builds the database engine, the broker, the validator, the connectors, the
receipt signer and the pipeline from ``Settings``.

    runtime = build()              # settings from the environment
    runtime.start_background()     # what this process runs besides serving requests
    ...
    runtime.stop()

``database_engine(settings)`` is the one function that makes a database engine from settings: the
runtime's, the admin commands', the benchmarks' and alembic's command line's.

Embedded mode (no broker URL): SQLite under the data directory, migrated on start; the queue
is in-process and ``start_background`` starts worker threads (``Settings.workers_in_process``,
default 1), the outbox relay and the sweeper. With 0 worker threads the server runs no relay:
an ``einvoice worker`` on the same database file relays to, and consumes, its own in-process
queue.

Production (RabbitMQ or Redis): the database is migrated by ``einvoice db upgrade``, not on start.
``start_background`` in the API runs the outbox relay and the sweeper only; the stages run in
``einvoice worker`` processes (``start_worker``), which run a relay and a sweeper too. Any number
of each may run: relays claim outbox rows with SKIP LOCKED, sweepers' changes are guarded.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dramatiq
from sqlalchemy import Engine, text

from einvoice import messaging, store
from einvoice.errors import ConfigurationError, TransientError
from einvoice.parsers.ubl import parse_for_pipeline
from einvoice.services import process, sweeper
from einvoice.settings import Settings, get_settings
from einvoice.store import UnitOfWork
from einvoice.store.webhooks import SqlWebhookStore
from einvoice.validation.pool import ValidationPool
from einvoice.worker import Pipeline, declare_actors

if TYPE_CHECKING:
    from einvoice.posting.files import FileExport
    from einvoice.receipts import ReceiptSigner
    from einvoice.validation.report import ValidationReport

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 0.2
#: A worker process's relay polls less often: the stages it runs wake it when they write a message.
WORKER_RELAY_INTERVAL_SECONDS = 1.0
#: The relay is woken at most this often: under load it then sends batches, not one message per wake.
RELAY_WAKE_SECONDS = 0.1
WEBHOOK_INTERVAL_SECONDS = 1.0
SWEEP_INTERVAL_SECONDS = 15.0
PURGE_INTERVAL_SECONDS = 3600.0


@dataclass
class Runtime:
    settings: Settings
    uow_factory: Callable[[], UnitOfWork]
    broker: dramatiq.Broker
    engine: Engine
    pipeline: Pipeline
    actors: dict[str, dramatiq.Actor]
    #: Validation subprocesses: the pipeline's (unless a validator was passed in) and ``/v1/validate``'s.
    validation_pool: ValidationPool
    _pollers: list[messaging.Poller] = field(default_factory=list)
    _worker: dramatiq.Worker | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_purge: float = float("-inf")
    _batch_sender: Callable[[Sequence[tuple[str, str]]], None] | None = None
    _relay_woken_at: float = float("-inf")
    signs_receipts: bool = True
    _signer: ReceiptSigner | None = None

    @property
    def signer(self) -> ReceiptSigner:
        """The receipt signer (``receipts.load_signer``), loaded on first use: the API takes it at
        its start, so a missing production key stops the server there; worker processes, built
        with ``signs_receipts=False``, never load one. Raises ConfigurationError."""
        with self._lock:
            if self._signer is None:
                if not self.signs_receipts:
                    raise ConfigurationError("this process was built without a receipt signer (signs_receipts=False)")
                from einvoice.receipts import load_signer

                self._signer = load_signer(self.settings)
            return self._signer

    # --- background work ---------------------------------------------------------------------

    def start_background(self) -> None:
        """Start what a serving process runs besides requests: the outbox relay and the sweeper,
        and in embedded mode the in-process worker (``Settings.workers_in_process`` threads)."""
        relay = True
        if messaging.is_in_process(self.broker):
            threads = self.settings.workers_in_process
            if threads > 0:
                self._start_validation(threads)
                self._start_dramatiq_worker(threads)
            else:
                # Nothing here consumes the in-process queue: leave the outbox to the relay of
                # an `einvoice worker` on the same database, or messages would be stranded here.
                relay = False
        self._start_pollers(relay=relay)

    def start_worker(self, threads: int) -> None:
        """Start consuming the queue with ``threads`` threads, plus the relay and the sweeper. The
        relay polls every ``WORKER_RELAY_INTERVAL_SECONDS`` and is woken when a stage writes a
        message (``Pipeline.on_sent``)."""
        self.broker.emit_after("process_boot")
        self._start_validation(threads)
        self._start_dramatiq_worker(threads)
        self._start_pollers(relay_every=WORKER_RELAY_INTERVAL_SECONDS)

    def _start_validation(self, threads: int) -> None:
        """Start the validation subprocesses before taking messages (each compiles the
        stylesheets once, so the first documents do not wait for it): one per worker thread
        unless ``EINVOICE_VALIDATION_PROCESSES`` says otherwise."""
        if self.settings.validation_processes is None:
            self.validation_pool.processes = max(1, threads)
        self.validation_pool.start()

    def _start_dramatiq_worker(self, threads: int) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = dramatiq.Worker(
                    self.broker, queues={messaging.QUEUE}, worker_threads=threads, worker_timeout=100
                )
                self._worker.start()

    def _start_pollers(self, *, relay: bool = True, relay_every: float = RELAY_INTERVAL_SECONDS) -> None:
        with self._lock:
            if self._pollers:
                return
            if relay:
                self.pipeline.on_sent = self.wake_relay
            # At least twice per lease, so a document whose worker stopped waits at most half a lease more.
            sweep_every = min(SWEEP_INTERVAL_SECONDS, max(0.5, self.settings.stuck_after_seconds / 2))
            self._pollers = [messaging.Poller("sweeper", self.sweep_once, interval=sweep_every)]
            if relay:
                outbox = self.relay
                self._pollers.append(
                    messaging.Poller(
                        "outbox-relay", outbox.relay_once, interval=relay_every, again_at=outbox.batch_size
                    )
                )
                self._pollers.append(
                    messaging.Poller("webhook-relay", self.relay_webhooks_once, interval=WEBHOOK_INTERVAL_SECONDS)
                )
            if self.engine.dialect.name == "postgresql" and self.settings.statistics_upkeep_seconds > 0:
                self._pollers.append(
                    messaging.Poller(
                        "statistics-upkeep", self.keep_statistics, interval=self.settings.statistics_upkeep_seconds
                    )
                )
            for poller in self._pollers:
                poller.start()

    @property
    def relay(self) -> messaging.OutboxRelay:
        if self._batch_sender is None:
            self._batch_sender = messaging.batch_sender_for(self.broker)
        return messaging.OutboxRelay(
            self.uow_factory,
            lambda action, doc: messaging.send(self.broker, action, doc),
            batch_sender=self._batch_sender,
        )

    def relay_webhooks_once(self) -> int:
        """Record deliveries for the suppliers' new responses and send the due ones to the queue."""
        from einvoice.services import webhooks

        store = self.pipeline.webhooks
        if store is None:
            return 0
        return webhooks.relay_once(store, lambda delivery_id: messaging.send_webhook_delivery(self.broker, delivery_id))

    def sweep_once(self) -> int:
        """One sweep; once an hour, also drop outbox rows sent more than a week ago. With the
        folder connector, first confirm the batches the ERP acknowledged (``.ack`` files)."""
        now = time.monotonic()
        if now - self._last_purge > PURGE_INTERVAL_SECONDS:
            self._last_purge = now
            sweeper.purge_sent_messages(self.uow_factory)
        confirmed = 0
        if self.settings.posting_enabled and self.settings.erp_connector == "folder":
            from einvoice.services.posting import collect_file_acks

            # The batches the ERP's import acknowledged with a .ack file since the last look.
            confirmed = len(collect_file_acks(self.uow_factory, file_export(self.settings)))
        return (
            confirmed
            + sweeper.sweep(
                self.uow_factory,
                stuck_after=timedelta(seconds=self.settings.stuck_after_seconds),
                ports=self.pipeline.ports,
                registry=self.pipeline.registry,
            ).total
        )

    def keep_statistics(self) -> int:
        """ANALYZE the engine's tables whose statistics fell behind, where the server's autovacuum
        is off (``store.statistics``); how many it analyzed."""
        from einvoice.store.statistics import analyze_stale
        from einvoice.store.tables import Base

        every = self.settings.statistics_upkeep_seconds
        return len(analyze_stale(self.engine, Base.metadata.tables, every=every))

    def wake_relay(self) -> None:
        """Ask the relay to look at the outbox now rather than at its next poll (optional: it polls
        anyway), at most every ``RELAY_WAKE_SECONDS``: woken after every submission, the relay
        had sent one message per wake and doubled the API's CPU per submission."""
        now = time.monotonic()
        if now - self._relay_woken_at < RELAY_WAKE_SECONDS:
            return
        self._relay_woken_at = now
        for poller in self._pollers:
            if poller.name == "outbox-relay":
                poller.wake()

    def stop(self) -> None:
        """Stop the worker (messages in hand are finished or go back to the broker), the relay and
        the sweeper; close the broker and the database pool."""
        with self._lock:
            pollers, self._pollers = self._pollers, []
            worker, self._worker = self._worker, None
        for poller in pollers:
            poller.stop()
        if worker is not None:
            worker.stop(timeout=30_000)
        self.validation_pool.close()
        close = getattr(self._batch_sender, "close", None)
        if close is not None:
            close()
        try:
            self.broker.close()
        except Exception:  # closing is best effort
            log.debug("broker close failed", exc_info=True)
        self.engine.dispose()

    # --- readiness -----------------------------------------------------------------------------

    def check_ready(self) -> dict[str, str]:
        """{"database": …, "broker": …, "artefacts": …}, each "ok" or "error: …"."""
        return {
            "database": self._check_database(),
            "broker": messaging.check_broker(self.broker),
            "artefacts": _check_artefacts(self.settings),
        }

    def _check_database(self) -> str:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current, head = store.current_revision(self.engine), store.head_revision()
            if current != head:
                return f"error: database at revision {current}, code expects {head} (run einvoice db upgrade)"
            return "ok"
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"


def _check_artefacts(settings: Settings) -> str:
    """Whether the validation artefacts are installed, without loading saxonche."""
    try:
        from einvoice.validation import artefacts

        status = getattr(artefacts, "check_installed", None)
        if status is not None:
            result = status(settings)
            return "ok" if result in (None, True, "ok") else f"error: {result}"
    except ImportError:
        pass
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return "ok" if settings.rules_dir.is_dir() else f"error: no artefacts under {settings.rules_dir}"


def database_engine(settings: Settings) -> Engine:
    """The database engine ``settings`` call for (``store.make_engine``), the embedded default's
    data directory created first. Every engine built from settings is built here."""
    url = settings.effective_database_url
    if store.is_sqlite(url) and settings.uses_default_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return store.make_engine(url)


def make_validator(pool: ValidationPool) -> process.Validator:
    """The stage's validator: each document validated in one of ``pool``'s subprocesses, held to
    the time and memory limits (a document over them is ``invalid``: ``VALIDATION-LIMIT``).

    A report whose verdict is ``error`` (a layer could not run) is a TransientError here: the
    message is retried (the operator may be installing artefacts) and the document goes ``dead``
    when retries run out.
    """

    def validate(raw: bytes, /, *, institution: str | None = None, at: datetime | None = None) -> ValidationReport:
        report = pool.validate(raw, institution=institution, at=at)
        if report.verdict == "error":
            causes = "; ".join(f.message for f in report.findings if f.layer.value == "engine")[:500]
            raise TransientError(f"validation could not run: {causes or 'engine error'}")
        return report

    return validate


def make_poster(settings: Settings, uow_factory: Callable[[], UnitOfWork]) -> process.Poster | None:
    """The poster of approved documents, or None (``EINVOICE_POSTING_ENABLED`` off, the default):
    documents then rest at ``approved``. On: ``services.posting.EntryPoster`` with the connector
    ``EINVOICE_ERP_CONNECTOR`` names: ``folder`` (``EINVOICE_ERP_OUTBOX_DIR``,
    ``EINVOICE_ERP_FILE_FORMAT``), ``pull`` (the ERP takes entries from ``/v1/erp/entries``; the
    POST stage then posts in the finish that approves the document, ``EntryPoster.posts_in_finish``) or
    ``http`` (pushed to ``EINVOICE_ERP_URL``, signed with ``EINVOICE_ERP_SIGNING_SECRET``). Raises
    ConfigurationError for an http connector without a URL or a signing secret."""
    if not settings.posting_enabled:
        return None
    from einvoice.services import posting

    connector: posting.Connector
    if settings.erp_connector == "pull":
        connector = posting.PullConnector()
    elif settings.erp_connector == "http":
        from einvoice.posting.push import PushSender

        secret = settings.erp_signing_secret.get_secret_value() if settings.erp_signing_secret else ""
        if not settings.erp_url or not secret:
            raise ConfigurationError("the http ERP connector needs EINVOICE_ERP_URL and EINVOICE_ERP_SIGNING_SECRET")
        token = settings.erp_token.get_secret_value() if settings.erp_token else None
        sender = PushSender(settings.erp_url, secret=secret.encode(), token=token, timeout=settings.erp_timeout_seconds)
        connector = posting.PushConnector(sender)
    else:
        connector = posting.FolderConnector(file_export(settings))
    return posting.EntryPoster(uow_factory, connector)


def file_export(settings: Settings) -> FileExport:
    """The folder connector's batches (``EINVOICE_ERP_OUTBOX_DIR``, ``EINVOICE_ERP_FILE_FORMAT``)."""
    from einvoice.posting.files import FileExport

    return FileExport(settings.effective_erp_outbox_dir, settings.erp_file_format)


def build(
    settings: Settings | None = None,
    *,
    validator: process.Validator | None = None,
    poster: process.Poster | None = None,
    migrate: bool | None = None,
    signs_receipts: bool = True,
) -> Runtime:
    """Build the runtime: engine, unit-of-work factory, broker with the actors declared, the
    validator (``make_validator``: validation subprocesses, started when first needed), the
    document parser, the ERP connector (``make_poster``) and the receipt signer
    (``Runtime.signer``, loaded on first use).

    Migrates the database in embedded mode (or when ``migrate`` says so). ``validator`` and
    ``poster`` replace the real ones (tests); without a poster, documents rest at ``approved``.
    ``signs_receipts=False`` for worker processes, which need no signing key.
    Raises ConfigurationError when production settings are incomplete.
    """
    settings = settings or get_settings()
    settings.check_production(signs_receipts=signs_receipts)
    engine = database_engine(settings)
    if migrate if migrate is not None else settings.mode == "embedded":
        store.migrate(engine)
    uow_factory = store.uow_factory_for(engine)
    broker = messaging.make_broker(settings)
    validation_pool = ValidationPool(settings)  # nothing starts until a document or start_worker needs it
    parser = functools.partial(
        parse_for_pipeline, max_bytes=settings.max_document_bytes, max_depth=settings.max_xml_depth
    )
    pipeline = Pipeline(
        uow_factory,
        settings,
        validator if validator is not None else make_validator(validation_pool),
        poster if poster is not None else make_poster(settings, uow_factory),
        parser=parser,
        webhooks=SqlWebhookStore.for_engine(engine),
    )
    actors = declare_actors(broker, pipeline)
    return Runtime(
        settings, uow_factory, broker, engine, pipeline, actors, validation_pool, signs_receipts=signs_receipts
    )
