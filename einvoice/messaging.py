"""The queue: broker construction and the outbox relay.

- No ``broker_url``: dramatiq's ``StubBroker``, consumed by a worker thread in the same process
  (embedded mode).
- ``amqp://…``: ``RabbitmqBroker`` with publisher confirms (a message counts as sent only once
  RabbitMQ has it), consumed by ``einvoice worker`` processes on any number of machines.
- ``redis://…``: ``RedisBroker``, for sites that run Redis rather than RabbitMQ.

Messages carry a document id and nothing else. The database is the source of truth: the
``outbox`` table holds what must be sent; ``OutboxRelay`` moves it to the broker. A row is marked
sent after the broker accepted the message, so a crash in between sends it twice, which the
idempotent stages absorb.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries

from einvoice.settings import Settings
from einvoice.store import UnitOfWork

log = logging.getLogger(__name__)

QUEUE = "einvoice"
GAVE_UP_ACTOR = "stage_gave_up"
WEBHOOK_ACTOR = "webhook_deliver"

MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000


def make_broker(settings: Settings) -> dramatiq.Broker:
    """Return the broker the settings call for, with retries configured. Connects lazily."""
    url = settings.effective_broker_url
    broker: dramatiq.Broker
    if not url:
        broker = StubBroker()
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url)
    else:
        from einvoice.errors import ConfigurationError
        from einvoice.settings import mask_url

        raise ConfigurationError(f"EINVOICE_BROKER_URL must be amqp://… or redis://…, not {mask_url(url)!r}")
    for middleware in broker.middleware:
        if isinstance(middleware, Retries):
            middleware.max_retries = settings.max_retries
            middleware.min_backoff = MIN_BACKOFF_MS
            middleware.max_backoff = MAX_BACKOFF_MS
    broker.add_middleware(CurrentMessage())
    broker.declare_queue(QUEUE)
    return broker


def is_in_process(broker: dramatiq.Broker) -> bool:
    """True for the in-process broker, whose messages only a worker in this process can consume."""
    return isinstance(broker, StubBroker)


def check_broker(broker: dramatiq.Broker) -> str:
    """'ok', or 'error: …' when the broker cannot be reached."""
    try:
        if is_in_process(broker):
            return "ok"
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
        from dramatiq.brokers.redis import RedisBroker

        if isinstance(broker, RabbitmqBroker):
            import pika

            parameters = broker.parameters[0] if isinstance(broker.parameters, list) else broker.parameters
            probe = pika.BlockingConnection(parameters)
            probe.close()
        elif isinstance(broker, RedisBroker):
            broker.client.ping()
        return "ok"
    except Exception as exc:  # readiness reports, it does not raise
        return f"error: {type(exc).__name__}: {exc}"


def send_webhook_delivery(broker: dramatiq.Broker, delivery_id: str) -> None:
    """Enqueue one attempt of a webhook delivery (``services.webhooks.deliver``)."""
    broker.enqueue(
        dramatiq.Message(queue_name=QUEUE, actor_name=WEBHOOK_ACTOR, args=(delivery_id,), kwargs={}, options={})
    )


def actor_name(action: str) -> str:
    """The actor that takes the messages of an outbox action: a stage's name (``Stage.actor_name``)."""
    return f"{action}_document"


def send(broker: dramatiq.Broker, action: str, document_id: str) -> None:
    """Enqueue the message for ``action`` on ``document_id``."""
    broker.enqueue(message_for(action, document_id))


def message_for(action: str, document_id: str) -> dramatiq.Message[object]:
    return dramatiq.Message(queue_name=QUEUE, actor_name=actor_name(action), args=(document_id,), kwargs={}, options={})


class RabbitmqBatchSender:
    """Publishes a batch of messages in one AMQP transaction on a connection of its own: the
    batch counts as sent once ``tx.commit`` returns (RabbitMQ has every message, persistent), one
    round trip for the batch where publisher confirms on dramatiq's channel cost one per message.
    A failed batch raises and counts as not sent at all (the relay sends it again)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None

    def _open_channel(self) -> Any:
        import pika

        if self._channel is None or not self._channel.is_open:
            self.close()
            parameters = self.broker.parameters  # type: ignore[attr-defined]
            self._connection = pika.BlockingConnection(parameters)
            self._channel = self._connection.channel()
            self._channel.tx_select()
        return self._channel

    def __call__(self, items: Sequence[tuple[str, str]]) -> None:
        import pika

        with self._lock:
            # The queue is declared on the first batch (dramatiq remembers it; it is durable).
            self.broker.declare_queue(QUEUE, ensure=True)  # type: ignore[call-arg]
            bodies = [message_for(action, document_id).encode() for action, document_id in items]
            properties = pika.BasicProperties(delivery_mode=2)
            for attempt in (1, 2):  # a connection the server closed while idle is opened again once
                try:
                    channel = self._open_channel()
                    for body in bodies:
                        channel.basic_publish(exchange="", routing_key=QUEUE, body=body, properties=properties)
                    channel.tx_commit()
                    return
                except pika.exceptions.AMQPError:
                    self.close()
                    if attempt == 2:
                        raise

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # closing is best effort
                log.debug("closing the relay's connection failed", exc_info=True)


class SendEach:
    """Sends a batch one ``send`` after another (brokers without a batch operation).

    ``after_commit``: hand the batch over only once the relay has committed the rows as sent.
    For the in-process queue: its consumers run in this process, maybe on the very database
    connection the relay holds (in-memory SQLite), so they must not start inside the relay's
    transaction; and what it holds is lost in a crash whether the rows are marked or not (the
    sweeper sends again what makes no progress)."""

    def __init__(self, broker: dramatiq.Broker, *, after_commit: bool = False) -> None:
        self.broker = broker
        self.after_commit = after_commit

    def __call__(self, items: Sequence[tuple[str, str]]) -> None:
        for action, document_id in items:
            send(self.broker, action, document_id)


def batch_sender_for(broker: dramatiq.Broker) -> Callable[[Sequence[tuple[str, str]]], None]:
    """A sender of many messages at once: one AMQP transaction per batch on RabbitMQ, else one
    ``send`` after another."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    if isinstance(broker, RabbitmqBroker):
        return RabbitmqBatchSender(broker)
    return SendEach(broker, after_commit=is_in_process(broker))


class OutboxRelay:
    """Moves outbox rows to the broker. Safe to run in several processes at once on PostgreSQL
    (rows are claimed with ``FOR UPDATE SKIP LOCKED``); on SQLite the write lock serialises them."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        sender: Callable[[str, str], None],
        *,
        batch_size: int = 100,
        batch_sender: Callable[[Sequence[tuple[str, str]]], None] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.sender = sender
        self.batch_size = batch_size
        self.batch_sender = batch_sender

    def relay_once(self) -> int:
        """Send one batch; return how many rows were sent. A broker error ends the batch early
        (the rows sent so far are marked) and propagates; with a batch sender, the whole batch
        counts as not sent (its rows stay pending), unless the sender hands over ``after_commit``
        (see ``SendEach``)."""
        with self.uow_factory() as uow:
            if self.batch_sender is not None:  # all or nothing: marked sent, rolled back if not
                taken = uow.outbox.take_pending(self.batch_size, now=datetime.now(UTC))
                if not taken:
                    # Ended by COMMIT (nothing was written): at a ROLLBACK, psycopg forgets every
                    # statement it prepared on the connection, and polls come often.
                    uow.commit()
                    return 0
                items = [(action, document_id) for _, action, document_id in taken]
                if getattr(self.batch_sender, "after_commit", False):
                    uow.commit()
                    self.batch_sender(items)
                else:
                    self.batch_sender(items)
                    uow.commit()
                return len(taken)
            rows = list(uow.outbox.claim_pending(self.batch_size))
            if not rows:
                return 0
            sent = []
            try:
                for row in rows:
                    self.sender(row.action, row.document_id)
                    sent.append(row)
            finally:
                if sent:
                    uow.outbox.mark_sent(sent, now=datetime.now(UTC))
                    uow.commit()
            return len(sent)

    def drain(self) -> int:
        """Relay until nothing is pending; return how many rows were sent."""
        total = 0
        while True:
            count = self.relay_once()
            total += count
            if count < self.batch_size:
                return total


class Poller(threading.Thread):
    """Calls ``step`` every ``interval`` seconds, or sooner when woken, until stopped; at once
    again when ``step`` did at least ``again_at`` things (a full batch: more may be waiting).
    Logs and carries on after errors, so a database or broker restart is survived.

    A relay steps again only after a full batch: after a partial one the outbox is empty or
    nearly, and polling it at once costs a transaction for nothing, several per batch when
    relays in several processes share the outbox."""

    def __init__(self, name: str, step: Callable[[], int], *, interval: float, again_at: int = 1) -> None:
        super().__init__(name=name, daemon=True)
        self.step = step
        self.interval = interval
        self.again_at = max(1, again_at)
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            busy = False
            try:
                busy = self.step() >= self.again_at
                self.failures = 0
            except Exception:
                self.failures += 1
                level = logging.WARNING if self.failures <= 3 else logging.DEBUG
                log.log(level, "%s failed (attempt %d); retrying", self.name, self.failures, exc_info=True)
            if busy:
                continue
            delay = self.interval * min(2 ** min(self.failures, 5), 30)
            self._wake.wait(delay)
            self._wake.clear()
