"""Suppliers' webhooks on SQLite and PostgreSQL, against a real HTTP receiver on 127.0.0.1: each
new response is delivered once, signed; a receiver that fails is tried again after the backoff
until it answers 2xx; one that never answers gets the delivery dead-lettered and listed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from einvoice import store
from einvoice.services import SupplierView, webhooks
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import UnitOfWork
from einvoice.store.webhooks import SqlWebhookStore
from tests.integration.private_servers import free_port
from tests.unit.services import documents
from tests.webhook_receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as served:
        yield served


@pytest.fixture
def hooks(database_url: str, supplier: SupplierView) -> Iterator[SqlWebhookStore]:
    engine = store.make_engine(database_url)
    yield SqlWebhookStore.for_engine(engine)
    engine.dispose()


def submit(uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, number: str) -> str:
    """A document taken in: intake writes its AB response."""
    outcome = submit_document(
        uow_factory, supplier=supplier, raw=documents.invoice(number), idempotency_key=None, settings=Settings()
    )
    return outcome.document.id


def relay(hooks: SqlWebhookStore, at: datetime | None = None) -> list[str]:
    sent: list[str] = []
    webhooks.relay_once(hooks, sent.append, now=at)
    return sent


def deliver(hooks: SqlWebhookStore, delivery_id: str, *, max_attempts: int = 8) -> str:
    return webhooks.deliver(hooks, delivery_id, webhooks.http_post(5), max_attempts=max_attempts, backoff_seconds=60)


LATER = datetime.now(UTC) + timedelta(days=1)  # past any backoff of these tests


def test_a_new_response_is_delivered_once_signed(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, hooks: SqlWebhookStore, receiver: Receiver
) -> None:
    submit(uow_factory, supplier, "BEFORE-1")  # answered before the webhook: not sent
    _, secret = webhooks.register(hooks, supplier.id, receiver.url, allow_http_localhost=True)
    document_id = submit(uow_factory, supplier, "HOOK-1")
    sent = relay(hooks)
    assert len(sent) == 1
    assert deliver(hooks, sent[0]) == "delivered"
    assert len(receiver.got) == 1
    headers, body = receiver.got[0]
    assert receiver.signed_with(secret)
    assert not receiver.signed_with(secret + "0")
    assert headers["X-Einvoice-Delivery"] == sent[0]
    sent_body = json.loads(body)
    assert sent_body["document_id"] == document_id
    assert (sent_body["type"], sent_body["code"]) == ("invoice-response", "AB")
    assert sent_body["url"] == f"/v1/documents/{document_id}/responses/{sent_body['id']}.xml"
    assert relay(hooks, LATER) == []  # delivered: never again
    assert deliver(hooks, sent[0]) == "gone"
    assert len(receiver.got) == 1
    assert webhooks.show(hooks, supplier.id)["recent_failures"] == []


def test_a_receiver_failing_twice_then_succeeding_gets_it_once_more(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, hooks: SqlWebhookStore, receiver: Receiver
) -> None:
    webhooks.register(hooks, supplier.id, receiver.url, allow_http_localhost=True)
    submit(uow_factory, supplier, "FLAKY-1")
    receiver.answers = [500, 503]
    [delivery] = relay(hooks)
    assert deliver(hooks, delivery) == "retry"
    assert relay(hooks) == []  # not before its backoff
    assert relay(hooks, LATER) == [delivery]
    assert deliver(hooks, delivery) == "retry"
    assert relay(hooks, LATER + timedelta(days=1)) == [delivery]
    assert deliver(hooks, delivery) == "delivered"
    assert [status for status in receiver.answers] == []
    assert len(receiver.got) == 3
    assert {h["X-Einvoice-Delivery"] for h, _ in receiver.got} == {delivery}  # one delivery, three attempts
    assert relay(hooks, LATER + timedelta(days=2)) == []


def test_a_dead_receiver_dead_letters_the_delivery_and_it_is_listed(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, hooks: SqlWebhookStore
) -> None:
    webhooks.register(hooks, supplier.id, f"http://127.0.0.1:{free_port()}/nobody", allow_http_localhost=True)
    document_id = submit(uow_factory, supplier, "DEAD-1")
    at = datetime.now(UTC)
    results = []
    for attempt in range(3):
        [delivery] = relay(hooks, at + timedelta(days=attempt))
        results.append(deliver(hooks, delivery, max_attempts=3))
    assert results == ["retry", "retry", "dead"]
    assert relay(hooks, at + timedelta(days=30)) == []
    [failure] = webhooks.show(hooks, supplier.id)["recent_failures"]
    assert failure["delivery_id"] == delivery
    assert failure["document_id"] == document_id
    assert failure["attempts"] == 3
    assert "ConnectError" in failure["last_error"]


def test_the_scan_reads_only_recent_responses_and_loses_none(
    uow_factory: Callable[[], UnitOfWork], supplier: SupplierView, hooks: SqlWebhookStore, receiver: Receiver
) -> None:
    from sqlalchemy import select

    from einvoice.store.tables import WebhookRow

    def scan_start() -> int:
        with hooks._sessions() as session:
            return int(session.scalar(select(WebhookRow.since_response_id)) or 0)

    webhooks.register(hooks, supplier.id, receiver.url, allow_http_localhost=True)
    registered = scan_start()
    at = datetime.now(UTC)
    submit(uow_factory, supplier, "SCAN-1")
    [first] = relay(hooks, at)
    assert deliver(hooks, first) == "delivered"
    assert scan_start() == registered  # not before the response is old enough
    assert relay(hooks, at + timedelta(minutes=11)) == []
    moved = scan_start()
    assert moved > registered
    second_document = submit(uow_factory, supplier, "SCAN-2")
    [second] = relay(hooks, at + timedelta(minutes=12))
    assert deliver(hooks, second) == "delivered"
    assert [json.loads(body)["document_id"] for _, body in receiver.got][-1] == second_document
    assert len(receiver.got) == 2


def test_put_again_rotates_the_secret_and_delete_removes_the_webhook(
    supplier: SupplierView, hooks: SqlWebhookStore, receiver: Receiver
) -> None:
    first, secret = webhooks.register(hooks, supplier.id, receiver.url, allow_http_localhost=True)
    assert first["rotated_at"] is None
    second, rotated = webhooks.register(hooks, supplier.id, receiver.url + "2", allow_http_localhost=True)
    assert rotated != secret
    assert second["created_at"] == first["created_at"]
    assert second["rotated_at"] is not None
    shown = webhooks.show(hooks, supplier.id)
    assert shown["url"] == receiver.url + "2"
    assert rotated not in json.dumps(shown)
    webhooks.remove(hooks, supplier.id)
    assert hooks.get(supplier.id) is None
