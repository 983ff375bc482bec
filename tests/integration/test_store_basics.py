"""The store on in-memory SQLite: migrations match the tables, UTC round trips, guarded updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from einvoice.store import current_revision, head_revision, make_engine, migrate, uow_factory_for
from einvoice.store.tables import Base, InstitutionRow, SupplierRow
from einvoice.store.writes import Step


def test_migrations_create_exactly_the_tables() -> None:
    engine = make_engine("sqlite://")
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    migrate(engine)  # again: nothing to do


def _seed(uow_factory):  # type: ignore[no-untyped-def]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with uow_factory() as uow:
        uow.suppliers.add(
            SupplierRow(id="s1", name="S", endpoint_scheme="0192", endpoint_id="1", api_key_hash="h", created_at=now)
        )
        uow.institutions.add(InstitutionRow(id="i1", name="I", endpoint_scheme="0192", endpoint_id="2", created_at=now))
        uow.documents.add_received(
            {
                "id": "d1",
                "supplier_id": "s1",
                "institution_id": "i1",
                "status": "received",
                "sha256": "0" * 64,
                "size": 3,
                "received_at": now,
                "status_changed_at": now,
            },
            b"abc",
            actor="t",
            next_action="validate",
        )
        uow.outbox.take_pending(now=now)  # its first message sent: the outbox starts empty
        uow.commit()


@pytest.fixture
def uow_factory():  # type: ignore[no-untyped-def]
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = uow_factory_for(engine)
    _seed(factory)
    return factory


def _move(uow, at: datetime) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        uow.documents.compare_and_set(
            "d1",
            expected=["received"],
            values={"status": "validated"},
            at=at,
            steps=[Step("received", "validated", "t")],
        )
    )


def test_datetimes_come_back_aware_in_utc(uow_factory) -> None:  # type: ignore[no-untyped-def]
    local = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))
    with uow_factory() as uow:
        assert _move(uow, local)
        uow.commit()
    with uow_factory() as uow:
        transition = uow.documents.transitions("d1")[-1]
        assert transition.at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
        assert transition.at.tzinfo is UTC


def test_naive_datetimes_are_refused(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow, pytest.raises(Exception, match="naive"):  # refused when written
        _move(uow, datetime(2026, 1, 1))


def test_compare_and_set_changes_only_from_an_expected_state(uow_factory) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    with uow_factory() as uow:
        assert uow.documents.compare_and_set(
            "d1", expected=["received"], values={"status": "validating", "status_changed_at": now}, at=now
        )
        assert not uow.documents.compare_and_set(
            "d1", expected=["received"], values={"status": "validating", "status_changed_at": now}, at=now
        )
        row = uow.documents.get("d1")
        assert row is not None
        assert row.status == "validating"
        uow.commit()


def test_unit_of_work_rolls_back_without_commit(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        uow.outbox.add("d1", "validate", now=datetime.now(UTC))
        assert uow.outbox.pending_count() == 1
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 0


def test_nested_unit_of_work_joins_the_outer_transaction(uow_factory) -> None:  # type: ignore[no-untyped-def]
    uow = uow_factory()
    with uow:
        with uow:
            uow.outbox.add("d1", "validate", now=datetime.now(UTC))
            uow.commit()  # inner: flush only
        uow.rollback()
    with uow_factory() as check:
        assert check.outbox.pending_count() == 0


def test_outbox_claim_and_mark_sent(uow_factory) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with uow_factory() as uow:
        uow.outbox.add("d1", "validate", now=t0)
        uow.outbox.add("d1", "match", now=t0 + timedelta(seconds=1))
        uow.commit()
    with uow_factory() as uow:
        assert uow.outbox.oldest_pending_created_at() == t0
        rows = uow.outbox.claim_pending(limit=1)
        assert [r.action for r in rows] == ["validate"]
        uow.outbox.mark_sent(rows, now=t0)
        uow.commit()
    with uow_factory() as uow:
        assert uow.outbox.pending_count() == 1
        assert uow.documents.raw("d1") == b"abc"
        assert uow.documents.count_by_status() == {"received": 1}
