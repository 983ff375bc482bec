"""Users and sessions: passwords, lock-out, expiry, what ends a session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.errors import AccountLockedError, NotFoundError, SignInError, UserError
from einvoice.services import InstitutionView, users
from einvoice.store import UnitOfWork
from tests.unit.services.documents import BUYER_ENDPOINT

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = {
    "failed_attempts": 3,
    "lockout": timedelta(minutes=15),
    "idle": timedelta(minutes=30),
    "max_age": timedelta(hours=10),
}


@pytest.fixture
def anna(uow_factory: Callable[[], UnitOfWork], institution: InstitutionView) -> users.UserView:
    return users.add_user(
        uow_factory(), username="anna", role="accountant", institutions=[BUYER_ENDPOINT], password=PASSWORD
    )


def test_only_a_hash_of_the_password_is_stored(uow_factory: Callable[[], UnitOfWork], anna: users.UserView) -> None:
    with uow_factory() as uow:
        row = uow.users.by_username("anna")
        assert row is not None
        assert PASSWORD not in row.password_hash
        assert row.password_hash.startswith("$argon2id$")
    assert anna.institutions == (BUYER_ENDPOINT,)


def test_users_are_refused_a_short_password_an_unknown_role_or_institution(
    uow_factory: Callable[[], UnitOfWork], institution: InstitutionView
) -> None:
    with pytest.raises(UserError, match="at least 12"):
        users.add_user(uow_factory(), username="x", role="accountant", institutions=[BUYER_ENDPOINT], password="short")
    with pytest.raises(UserError, match="role must be one of"):
        users.add_user(uow_factory(), username="x", role="boss", institutions=[BUYER_ENDPOINT], password=PASSWORD)
    with pytest.raises(NotFoundError):
        users.add_user(uow_factory(), username="x", role="accountant", institutions=["0088:1"], password=PASSWORD)
    with pytest.raises(UserError, match="at least one --institution"):
        users.add_user(uow_factory(), username="x", role="approver", institutions=[], password=PASSWORD)


def test_a_session_ends_when_idle_and_at_its_end_whatever_its_use(
    uow_factory: Callable[[], UnitOfWork], anna: users.UserView
) -> None:
    token, who = users.sign_in(uow_factory(), "anna", PASSWORD, now=T0, **LIMITS)
    assert who.username == "anna"
    idle = LIMITS["idle"]
    assert users.session_user(uow_factory(), token, idle=idle, now=T0 + timedelta(minutes=29)) is not None
    assert users.session_user(uow_factory(), token, idle=idle, now=T0 + timedelta(minutes=55)) is not None
    assert users.session_user(uow_factory(), token, idle=idle, now=T0 + timedelta(minutes=91)) is None
    busy, _ = users.sign_in(uow_factory(), "anna", PASSWORD, now=T0, **LIMITS)
    for minutes in range(0, 600, 20):  # in use all day
        assert users.session_user(uow_factory(), busy, idle=idle, now=T0 + timedelta(minutes=minutes)) is not None
    assert users.session_user(uow_factory(), busy, idle=idle, now=T0 + timedelta(hours=10, minutes=1)) is None


def test_failures_in_a_row_lock_out_until_the_wait_is_over(
    uow_factory: Callable[[], UnitOfWork], anna: users.UserView
) -> None:
    for _ in range(2):
        with pytest.raises(SignInError) as failed:
            users.sign_in(uow_factory(), "anna", "wrong", now=T0, **LIMITS)
        assert not isinstance(failed.value, AccountLockedError)
    with pytest.raises(AccountLockedError):
        users.sign_in(uow_factory(), "anna", "wrong", now=T0, **LIMITS)
    with pytest.raises(AccountLockedError, match="15 minutes"):
        users.sign_in(uow_factory(), "anna", PASSWORD, now=T0 + timedelta(seconds=1), **LIMITS)
    users.sign_in(uow_factory(), "anna", PASSWORD, now=T0 + timedelta(minutes=16), **LIMITS)


def test_reset_password_and_disable_end_the_sessions(
    uow_factory: Callable[[], UnitOfWork], anna: users.UserView
) -> None:
    idle = LIMITS["idle"]
    token, _ = users.sign_in(uow_factory(), "anna", PASSWORD, now=T0, **LIMITS)
    users.reset_password(uow_factory(), "anna", "another long password")
    assert users.session_user(uow_factory(), token, idle=idle, now=T0) is None
    with pytest.raises(SignInError):
        users.sign_in(uow_factory(), "anna", PASSWORD, now=T0, **LIMITS)
    token, _ = users.sign_in(uow_factory(), "anna", "another long password", now=T0, **LIMITS)
    users.disable_user(uow_factory(), "anna")
    assert users.session_user(uow_factory(), token, idle=idle, now=T0) is None
    with pytest.raises(SignInError):
        users.sign_in(uow_factory(), "anna", "another long password", now=T0, **LIMITS)
