"""The administrator's pages, ``/ui/admin/…``: users (list, add, disable, reset a password) and the
institutions' settings (approval limits as ``einvoice institutions set-approval`` sets them, default
tolerances as ``set-tolerances``).

Administrators only: anyone else signed in gets 403. Every form carries the session's CSRF token;
every change goes through the same services as the CLI and is logged (logger
``einvoice.ui.admin``, event ``admin change``: who, what, on what; the log line carries when).
Plain HTML forms, no JavaScript.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from einvoice.domain.review import Role
from einvoice.errors import NotFoundError, UserError
from einvoice.services.users import SignedIn
from einvoice.ui import sessions
from einvoice.ui.pages import _in_db, _render, _to_sign_in, current_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ui/admin", include_in_schema=False)

#: The default tolerances' form fields, in the order of ``einvoice institutions set-tolerances``.
TOLERANCE_FIELDS = (
    ("price_percent", "Unit price above the committed one, in percent"),
    ("price_amount", "Unit price above the committed one, as an amount"),
    ("quantity_percent", "Quantity beyond the ordered one, in percent"),
    ("amount_percent", "Invoice amount beyond what remains, in percent"),
    ("amount_amount", "Invoice amount beyond what remains, as an amount"),
)


async def _administrator(request: Request) -> SignedIn | Response:
    """The signed-in administrator, or the page to answer instead (sign-in, or 403)."""
    user = await current_user(request)
    if user is None:
        return _to_sign_in(request)
    if user.role is not Role.ADMINISTRATOR:
        return _render(request, "error.html", 403, user=user, message="these pages are for administrators")
    return user


async def _users_page(request: Request, user: SignedIn, *, error: str | None = None, status: int = 200) -> Response:
    from einvoice.services import accounts, users

    listed = await _in_db(request, users.list_users)
    institutions = await _in_db(request, accounts.list_institutions)
    return _render(
        request,
        "admin_users.html",
        status,
        user=user,
        users=listed,
        institutions=institutions,
        roles=[r.value for r in Role],
        error=error,
        done=request.query_params.get("done"),
    )


async def _institutions_page(
    request: Request, user: SignedIn, *, error: str | None = None, status: int = 200
) -> Response:
    from einvoice.services import users

    settings = await _in_db(request, users.institution_settings)
    return _render(
        request,
        "admin_institutions.html",
        status,
        user=user,
        settings=settings,
        tolerance_fields=TOLERANCE_FIELDS,
        error=error,
        done=request.query_params.get("done"),
    )


async def _change(
    request: Request,
    page: Callable[..., Any],
    what: str,
    target: str,
    apply: Callable[[SignedIn, Any], Any],
) -> Response:
    """Check the administrator and the form's CSRF token, ``apply`` the change, log it and go back
    to ``page`` (with the change's message, or the refusal's at 422/404)."""
    user = await _administrator(request)
    if not isinstance(user, SignedIn):
        return user
    form = await request.form()
    if not sessions.same_token(user.csrf_token, str(form.get("csrf_token") or "")):
        return _render(request, "error.html", 403, user=user, message="the form expired or came from elsewhere")
    try:
        details = await apply(user, form)
    except UserError as exc:
        return await page(request, user, error=str(exc), status=422)
    except NotFoundError as exc:
        return await page(request, user, error=str(exc), status=404)
    log.info(
        "admin change",
        extra={"admin": user.username, "admin_id": user.user_id, "change": what, "target": target, **details},
    )
    back = "/ui/admin/users" if page is _users_page else "/ui/admin/institutions"
    return RedirectResponse(f"{back}?{urlencode({'done': what})}", status_code=303)


@router.get("")
@router.get("/")
async def admin_home() -> RedirectResponse:
    return RedirectResponse("/ui/admin/users", status_code=303)


@router.get("/users")
async def users_page(request: Request) -> Response:
    user = await _administrator(request)
    return await _users_page(request, user) if isinstance(user, SignedIn) else user


@router.post("/users")
async def add_user(request: Request) -> Response:
    from einvoice.services import users

    form = await request.form()
    username = str(form.get("username") or "").strip()

    async def apply(_: SignedIn, form: Any) -> dict[str, Any]:
        role = str(form.get("role") or "")
        institutions = [str(v) for v in form.getlist("institution") if v]
        added = await _in_db(
            request,
            users.add_user,
            username=username,
            role=role,
            institutions=institutions,
            password=str(form.get("password") or ""),
        )
        return {"role": added.role.value, "institutions": list(added.institutions)}

    return await _change(request, _users_page, "user added", username, apply)


@router.post("/users/{username}/disable")
async def disable_user(request: Request, username: str) -> Response:
    from einvoice.services import users

    async def apply(user: SignedIn, _: Any) -> dict[str, Any]:
        if username == user.username:
            raise UserError("an administrator cannot disable themselves here: ask another administrator")
        await _in_db(request, users.disable_user, username)
        return {}

    return await _change(request, _users_page, "user disabled", username, apply)


@router.post("/users/{username}/reset-password")
async def reset_password(request: Request, username: str) -> Response:
    from einvoice.services import users

    async def apply(_: SignedIn, form: Any) -> dict[str, Any]:
        await _in_db(request, users.reset_password, username, str(form.get("password") or ""))
        return {}

    return await _change(request, _users_page, "password reset", username, apply)


@router.get("/institutions")
async def institutions_page(request: Request) -> Response:
    user = await _administrator(request)
    return await _institutions_page(request, user) if isinstance(user, SignedIn) else user


@router.post("/institutions/{endpoint}/approval")
async def set_approval(request: Request, endpoint: str) -> Response:
    from einvoice.services import users

    async def apply(_: SignedIn, form: Any) -> dict[str, Any]:
        rule = await _in_db(
            request,
            users.set_approval_rule,
            endpoint,
            person_above=str(form.get("person_above") or ""),
            two_people_above=str(form.get("two_people_above") or ""),
        )
        return {"person_above": _text(rule.person_above), "two_people_above": _text(rule.two_people_above)}

    return await _change(request, _institutions_page, "approval limits set", endpoint, apply)


@router.post("/institutions/{endpoint}/tolerances")
async def set_tolerances(request: Request, endpoint: str) -> Response:
    from einvoice.domain.commitments import Tolerances
    from einvoice.services import accounts, commitments, users

    async def apply(_: SignedIn, form: Any) -> dict[str, Any]:
        values = {name: users.parse_amount(str(form.get(name) or ""), name) for name, _ in TOLERANCE_FIELDS}
        tolerances = Tolerances(**values)
        try:
            institution = await _in_db(request, accounts.institution_by_endpoint, endpoint)
        except accounts.AccountError as exc:
            raise NotFoundError(str(exc)) from None
        await _in_db(request, commitments.set_default_tolerances, institution_id=institution.id, tolerances=tolerances)
        return tolerances.to_dict()

    return await _change(request, _institutions_page, "default tolerances set", endpoint, apply)


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)
