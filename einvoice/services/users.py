"""The people who use the accountants' pages: users, their institutions, sign-in and sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile: 64 MiB, 3 passes); only the hash is stored. ``failed_attempts`` wrong passwords in a row
lock a user out for ``lockout`` (the count starts again after a success or the wait). A session is
a random token (its sha256 stored) that ends after ``idle`` without a request, after ``max_age``
whatever happens, at sign-out, and when the user is disabled or their password reset.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from einvoice.domain.commitments import Tolerances
from einvoice.domain.review import ApprovalRule, Role
from einvoice.errors import AccountLockedError, DuplicateKeyError, NotFoundError, SignInError, UserError
from einvoice.services import InstitutionView, institution_view
from einvoice.services.accounts import registered_institution
from einvoice.store import UnitOfWork
from einvoice.store.ports import UserRecord
from einvoice.store.tables import ApprovalRuleRow, UserRow, UserSessionRow

MIN_PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_hasher = PasswordHasher()
# Verified when the user name is unknown, so that the answer takes as long as for a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True, slots=True)
class UserView:
    id: str
    username: str
    role: Role
    active: bool
    institutions: tuple[str, ...]  # endpoints "scheme:id"
    locked_until: datetime | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role.value,
            "active": self.active,
            "institutions": list(self.institutions),
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user behind a session, with what the pages need on every request."""

    user_id: str
    username: str
    role: Role
    institution_ids: frozenset[str]
    csrf_token: str
    expires_at: datetime


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password: str) -> None:
    """Raise UserError when ``password`` is too short to be allowed."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters, not {len(password)}")


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise UserError(f"role must be one of {', '.join(r.value for r in Role)}, not {value!r}") from None


def _view(uow: UnitOfWork, row: UserRecord) -> UserView:
    institutions = tuple(f"{i.endpoint_scheme}:{i.endpoint_id}" for i in uow.users.institutions_of(row.id))
    return UserView(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        active=row.active,
        institutions=institutions,
        locked_until=row.locked_until,
        created_at=row.created_at,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def add_user(uow: UnitOfWork, *, username: str, role: str, institutions: Sequence[str], password: str) -> UserView:
    """Add a user who sees the institutions with the endpoints ``institutions``. Raises UserError
    (a user name of other characters than letters, digits and ``._@-``, an unknown role, a
    password shorter than ``MIN_PASSWORD_LENGTH``, a user name taken, an accountant or approver
    without an institution) and NotFoundError (an endpoint no institution has)."""
    username = username.strip()
    if not USERNAME.match(username):
        raise UserError(f"a user name is 1 to 64 letters, digits and . _ @ -, not {username!r}")
    user_role = _role(role)
    check_password(password)
    if not institutions and user_role is not Role.ADMINISTRATOR:
        raise UserError("an accountant or approver needs at least one --institution")
    password_hash = hash_password(password)
    now = _now()
    with uow:
        ids = []
        for endpoint in dict.fromkeys(institutions):
            ids.append(registered_institution(uow, endpoint).id)
        if uow.users.by_username(username) is not None:
            raise UserError(f"a user named {username} exists")
        try:
            row = uow.users.add(
                UserRow(
                    username=username,
                    role=user_role.value,
                    password_hash=password_hash,
                    active=True,
                    failed_sign_ins=0,
                    created_at=now,
                    password_changed_at=now,
                ),
                ids,
            )
            view = _view(uow, row)
            uow.commit()
        except DuplicateKeyError as exc:
            raise UserError(f"a user named {username} exists") from exc
    return view


def list_users(uow: UnitOfWork) -> list[UserView]:
    with uow:
        return [_view(uow, row) for row in uow.users.list()]


def _user(uow: UnitOfWork, username: str) -> UserRecord:
    row = uow.users.by_username(username)
    if row is None:
        raise NotFoundError(f"no user {username}")
    return row


def disable_user(uow: UnitOfWork, username: str) -> UserView:
    """Stop a user from signing in; their sessions end at once. Raises NotFoundError."""
    with uow:
        row = uow.users.set_active(_user(uow, username).id, False)
        uow.users.end_sessions_of(row.id)
        view = _view(uow, row)
        uow.commit()
    return view


def reset_password(uow: UnitOfWork, username: str, password: str) -> UserView:
    """Give a user a new password, lift a lock-out and end their sessions. Raises NotFoundError,
    UserError (a password too short)."""
    check_password(password)
    password_hash = hash_password(password)
    with uow:
        user_id = _user(uow, username).id
        uow.users.set_password(user_id, password_hash, changed_at=_now())
        row = uow.users.set_failed_sign_ins(user_id, 0, locked_until=None)
        uow.users.end_sessions_of(user_id)
        view = _view(uow, row)
        uow.commit()
    return view


def sign_in(
    uow: UnitOfWork,
    username: str,
    password: str,
    *,
    failed_attempts: int,
    lockout: timedelta,
    idle: timedelta,
    max_age: timedelta,
    now: datetime | None = None,
) -> tuple[str, SignedIn]:
    """Check the password and open a session: return its token (for the cookie, shown once) and
    who signed in. Raises AccountLockedError (locked out: the wait is not over, or this failure
    was the ``failed_attempts``-th in a row) and SignInError (wrong name or password, or a
    disabled user: one message for all, so that a guess learns nothing)."""
    now = now or _now()
    with uow:
        row = uow.users.by_username(username.strip())
        if row is None:
            _verify(_DUMMY_HASH, password)
            raise SignInError("wrong user name or password")
        if row.locked_until is not None and row.locked_until > now:
            raise AccountLockedError(_locked_message(row.locked_until, now))
        if not _verify(row.password_hash, password) or not row.active:
            failed = (row.failed_sign_ins or 0) + 1
            locked = failed >= failed_attempts
            if locked:
                uow.users.set_failed_sign_ins(row.id, 0, locked_until=now + lockout)
            else:
                uow.users.set_failed_sign_ins(row.id, failed, locked_until=row.locked_until)
            uow.commit()
            if locked:
                raise AccountLockedError(_locked_message(now + lockout, now))
            raise SignInError("wrong user name or password")
        if _hasher.check_needs_rehash(row.password_hash):
            uow.users.set_password(row.id, hash_password(password), changed_at=None)
        row = uow.users.set_failed_sign_ins(row.id, 0, locked_until=None)
        return _open_session(uow, row, now=now, idle=idle, max_age=max_age)


def sign_in_trusted(
    uow: UnitOfWork, username: str, *, idle: timedelta, max_age: timedelta, now: datetime | None = None
) -> tuple[str, SignedIn]:
    """Open a session for ``username`` as an identity provider in front of the engine vouched for
    it (a trusted reverse proxy's header): no password, but the user must exist locally (their role
    and institutions are the local ones) and be active. Raises SignInError otherwise."""
    now = now or _now()
    with uow:
        row = uow.users.by_username(username.strip())
        if row is None or not row.active:
            raise SignInError(f"{username.strip()!r} is not an active user of these pages: ask an administrator")
        return _open_session(uow, row, now=now, idle=idle, max_age=max_age)


def _open_session(
    uow: UnitOfWork, row: UserRecord, *, now: datetime, idle: timedelta, max_age: timedelta
) -> tuple[str, SignedIn]:
    """Record a new session of ``row`` and commit (inside the caller's unit of work)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + max_age
    uow.users.end_expired_sessions(now)
    uow.users.add_session(
        UserSessionRow(
            token_hash=_token_hash(token),
            user_id=row.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
        )
    )
    signed_in = SignedIn(
        row.id,
        row.username,
        Role(row.role),
        frozenset(i.id for i in uow.users.institutions_of(row.id)),
        csrf,
        min(expires, now + idle),
    )
    uow.commit()
    return token, signed_in


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() + 59) // 60)
    return f"too many failed sign-ins: try again in {minutes} minute{'s' if minutes != 1 else ''}"


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_user(uow: UnitOfWork, token: str, *, idle: timedelta, now: datetime | None = None) -> SignedIn | None:
    """Who holds the session ``token``, or None when there is no such session, it ended (idle
    longer than ``idle``, past its end), or its user was disabled. A session in use is kept alive
    (``last_seen_at`` written at most once a minute)."""
    now = now or _now()
    with uow:
        session = uow.users.session_by_hash(_token_hash(token))
        if session is None:
            return None
        if session.expires_at <= now or session.last_seen_at + idle <= now:
            uow.users.end_session(session.token_hash)
            uow.commit()
            return None
        user = uow.users.get(session.user_id)
        if user is None or not user.active:
            return None
        if now - session.last_seen_at > timedelta(minutes=1):
            uow.users.touch_session(session.token_hash, now)
            uow.commit()
        return SignedIn(
            user.id,
            user.username,
            Role(user.role),
            frozenset(i.id for i in uow.users.institutions_of(user.id)),
            session.csrf_token,
            min(session.expires_at, now + idle),
        )


def sign_out(uow: UnitOfWork, token: str) -> None:
    """End the session ``token`` (nothing when it already ended)."""
    with uow:
        uow.users.end_session(_token_hash(token))
        uow.commit()


# --- institutions' approval rules ------------------------------------------------------------------


def parse_amount(value: str | Decimal | None, what: str) -> Decimal | None:
    """``value`` as an amount of 0 or more (empty: None); UserError naming ``what`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise UserError(f"{what} must be an amount such as 10000.00, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise UserError(f"{what} must be an amount of 0 or more, not {value!r}")
    return amount


def set_approval_rule(
    uow: UnitOfWork, endpoint: str, *, person_above: str | Decimal | None, two_people_above: str | Decimal | None
) -> ApprovalRule:
    """Set the approval limits of the institution with ``endpoint``. Raises NotFoundError, UserError
    (an amount that is not one, or two people asked for below the amount that needs one)."""
    person = parse_amount(person_above, "--person-above")
    two = parse_amount(two_people_above, "--two-people-above")
    if person is not None and two is not None and two < person:
        raise UserError("--two-people-above must not be below --person-above")
    with uow:
        institution = registered_institution(uow, endpoint)
        uow.users.set_approval_rule(
            ApprovalRuleRow(institution_id=institution.id, person_above=person, two_people_above=two, updated_at=_now())
        )
        uow.commit()
    return ApprovalRule(person, two)


def approval_rule(uow: UnitOfWork, institution_id: str | None) -> ApprovalRule:
    """The approval limits of an institution (none set: no limits)."""
    row = uow.users.approval_rule(institution_id) if institution_id else None
    return ApprovalRule() if row is None else ApprovalRule(row.person_above, row.two_people_above)


@dataclass(frozen=True, slots=True)
class InstitutionSettings:
    """What an administrator sets per institution: approval limits and default tolerances."""

    institution: InstitutionView
    approval: ApprovalRule
    tolerances: Tolerances


def institution_settings(uow: UnitOfWork) -> list[InstitutionSettings]:
    """Every institution with its approval limits and default tolerances, by name."""
    with uow:
        return [
            InstitutionSettings(
                institution_view(row), approval_rule(uow, row.id), uow.commitments.default_tolerances(row.id)
            )
            for row in sorted(uow.institutions.list(), key=lambda r: (r.name, r.id))
        ]
