"""The accountants' pages, served by the API's app under ``/ui/``: sign-in and sign-out, the
exception queue (``/ui/queue``) and the document page (``/ui/documents/{id}``) with its decisions
and its attachments' downloads.

Server-rendered (Jinja2), plain HTML forms: everything works without JavaScript and by keyboard.
Thin: each route reads the request, calls one service (``services.users``, ``services.review``)
in a database thread, and renders. Errors are pages, not problem details: 404 for a document
the user may not see (as for one that does not exist), 409 for a decision the state no longer
allows, 422 for an incomplete one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import URLSafeSerializer

from einvoice.api.deps import in_database_thread
from einvoice.domain.review import REASON_LABELS, STATUS_REASONS, reason_label
from einvoice.domain.states import REVIEW_STATES
from einvoice.errors import (
    AccountLockedError,
    DecisionConflictError,
    DecisionRefusedError,
    NotFoundError,
    SignInError,
)
from einvoice.services.users import SignedIn
from einvoice.ui import sessions

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(reason_label=reason_label, status_reasons=STATUS_REASONS)

router = APIRouter(prefix="/ui", include_in_schema=False)
SORT_LABELS = [
    ("age", "age"),
    ("amount", "amount"),
    ("issue_date", "issue date"),
    ("supplier", "supplier"),
    ("number", "number"),
    ("institution", "institution"),
]
T = TypeVar("T")

#: Sent with every page: no framing, no scripts or styles from elsewhere, nothing cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _serializer(request: Request) -> URLSafeSerializer:
    state = request.app.state
    serializer: URLSafeSerializer | None = getattr(state, "ui_cookies", None)
    if serializer is None:
        serializer = sessions.cookie_serializer(state.signer)
        state.ui_cookies = serializer
    return serializer


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


async def _in_db(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    uow_factory = _runtime(request).uow_factory
    return await in_database_thread(lambda: fn(uow_factory(), *args, **kwargs))


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _secure(request: Request) -> bool:
    return sessions.secure(request, _runtime(request).settings)


async def current_user(request: Request) -> SignedIn | None:
    """The signed-in user of the request, or None (no cookie, a forged one, an ended session)."""
    from einvoice.services import users

    token = sessions.read_cookie(_serializer(request), request, sessions.SESSION_COOKIE)
    if token is None:
        return None
    settings = _runtime(request).settings
    user = await _in_db(request, users.session_user, token, idle=timedelta(minutes=settings.ui_session_idle_minutes))
    vouched = sessions.trusted_user(request, settings)
    if user is not None and vouched is not None and vouched != user.username:
        return None  # the identity provider now names someone else: sign in again as them
    return user


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/ui/sign-in?" + urlencode({"next": target}), status_code=303)


def _local(target: str | None) -> str:
    """``target`` when it is a page of this app (``/ui/…``), else the queue: never a redirect off-site."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/queue"


# --- sign-in and sign-out ------------------------------------------------------------------------------


def _sign_in_page(request: Request, *, error: str | None = None, status: int = 200, next_url: str = "") -> Response:
    token = sessions.new_csrf_token()
    response = _render(request, "sign_in.html", status, error=error, csrf_token=token, next_url=_local(next_url))
    sessions.set_cookie(
        response, _serializer(request), sessions.SIGN_IN_CSRF_COOKIE, token, secure_cookie=_secure(request)
    )
    return response


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/queue", status_code=303)


def _signed_in(request: Request, token: str, next_url: str) -> Response:
    """Back to the page asked for, with the new session's cookie."""
    response = RedirectResponse(_local(next_url), status_code=303)
    secure = _secure(request)
    sessions.set_cookie(response, _serializer(request), sessions.SESSION_COOKIE, token, secure_cookie=secure)
    sessions.clear_cookie(response, sessions.SIGN_IN_CSRF_COOKIE, secure_cookie=secure)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form; behind a trusted identity provider (``EINVOICE_UI_TRUSTED_HEADER`` from
    ``EINVOICE_UI_TRUSTED_PROXIES``), the session of the user it names, without a form."""
    from einvoice.services import users

    next_url = request.query_params.get("next", "")
    settings = _runtime(request).settings
    vouched = sessions.trusted_user(request, settings)
    if vouched is None:
        return _sign_in_page(request, next_url=next_url)
    try:
        token, _ = await _in_db(
            request,
            users.sign_in_trusted,
            vouched,
            idle=timedelta(minutes=settings.ui_session_idle_minutes),
            max_age=timedelta(hours=settings.ui_session_max_hours),
        )
    except SignInError as exc:
        return _render(request, "error.html", 403, user=None, message=str(exc))
    return _signed_in(request, token, next_url)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    from einvoice.services import users

    form = await request.form()
    next_url = str(form.get("next") or "")
    expected = sessions.read_cookie(_serializer(request), request, sessions.SIGN_IN_CSRF_COOKIE)
    if not sessions.same_token(expected, str(form.get("csrf_token") or "")):
        return _sign_in_page(
            request, error="the form expired or came from elsewhere: sign in again", status=403, next_url=next_url
        )
    settings = _runtime(request).settings
    try:
        token, _ = await _in_db(
            request,
            users.sign_in,
            str(form.get("username") or ""),
            str(form.get("password") or ""),
            failed_attempts=settings.ui_lockout_attempts,
            lockout=timedelta(minutes=settings.ui_lockout_minutes),
            idle=timedelta(minutes=settings.ui_session_idle_minutes),
            max_age=timedelta(hours=settings.ui_session_max_hours),
        )
    except AccountLockedError as exc:
        return _sign_in_page(request, error=str(exc), status=429, next_url=next_url)
    except SignInError as exc:
        return _sign_in_page(request, error=str(exc), status=401, next_url=next_url)
    return _signed_in(request, token, next_url)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    from einvoice.services import users

    user = await current_user(request)
    form = await request.form()
    if user is not None and not sessions.same_token(user.csrf_token, str(form.get("csrf_token") or "")):
        return _render(request, "error.html", 403, user=user, message="the form expired or came from elsewhere")
    token = sessions.read_cookie(_serializer(request), request, sessions.SESSION_COOKIE)
    if token is not None:
        await _in_db(request, users.sign_out, token)
    response = RedirectResponse("/ui/sign-in", status_code=303)
    sessions.clear_cookie(response, sessions.SESSION_COOKIE, secure_cookie=_secure(request))
    return response


# --- the queue ---------------------------------------------------------------------------------------------


def _int(value: str | None, default: int | None, *, low: int = 0, high: int = 1_000_000) -> int | None:
    try:
        return max(low, min(high, int(value))) if value not in (None, "") else default
    except ValueError:
        return default


def _decimal(value: str | None) -> Decimal | None:
    try:
        amount = Decimal(value) if value else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() else None


def queue_filter(params: Any, user: SignedIn) -> Any:
    """The queue's filter from the URL's query (values it cannot use are left out)."""
    from einvoice.services.review import PAGE_SIZES, SORTS, QueueFilter

    institution = params.get("institution") or None
    status = params.get("status") or None
    reason = params.get("reason") or None
    sort = params.get("sort") or "age"
    per_page = _int(params.get("per_page"), 50) or 50
    return QueueFilter(
        institution=institution if institution in user.institution_ids else None,
        reason=reason if reason in REASON_LABELS else None,
        supplier=(params.get("supplier") or "").strip()[:100] or None,
        status=status if status in REVIEW_STATES else None,
        min_age_days=_int(params.get("min_age_days"), None),
        min_amount=_decimal(params.get("min_amount")),
        max_amount=_decimal(params.get("max_amount")),
        sort=sort if sort in SORTS else "age",
        descending=(params.get("order") or ("desc" if sort == "age" else "asc")) == "desc",
        page=_int(params.get("page"), 1, low=1) or 1,
        per_page=per_page if per_page in PAGE_SIZES else 50,
        after=(params.get("after") or "")[:300] or None,
        before=(params.get("before") or "")[:300] or None,
    )


def _query_of(wanted: Any, **changes: Any) -> str:
    """The URL query of ``wanted`` with ``changes``: the links of sorting and paging keep the filter."""
    values = {
        "institution": wanted.institution,
        "reason": wanted.reason,
        "supplier": wanted.supplier,
        "status": wanted.status,
        "min_age_days": wanted.min_age_days,
        "min_amount": wanted.min_amount,
        "max_amount": wanted.max_amount,
        "sort": wanted.sort,
        "order": "desc" if wanted.descending else "asc",
        "page": wanted.page,
        "per_page": wanted.per_page,
        "after": wanted.after,
        "before": wanted.before,
    }
    values.update(changes)
    return urlencode({k: str(v) for k, v in values.items() if v not in (None, "")})


@router.get("/queue")
async def queue_page(request: Request) -> Response:
    from einvoice.services import review

    user = await current_user(request)
    if user is None:
        return _to_sign_in(request)
    wanted = queue_filter(request.query_params, user)
    max_age = _runtime(request).settings.ui_queue_counts_seconds
    page = await _in_db(request, review.queue, user, wanted, counts_max_age=max_age)
    return _render(
        request,
        "queue.html",
        user=user,
        page=page,
        wanted=wanted,
        now=datetime.now(UTC),
        query_of=lambda **changes: _query_of(wanted, **changes),
        reasons=REASON_LABELS,
        states=sorted(REVIEW_STATES),
        sorts=SORT_LABELS,
    )


# --- one document ---------------------------------------------------------------------------------------


async def _document_page(
    request: Request, user: SignedIn, document_id: str, *, error: str | None = None, status: int = 200, form: Any = None
) -> Response:
    from einvoice.services import review

    find = (request.query_params.get("find") or "").strip()[:100] or None
    try:
        seen = await _in_db(request, review.review, user, document_id, find=find)
    except NotFoundError:
        return _render(request, "error.html", 404, user=user, message="no such document")
    return _render(
        request,
        "document.html",
        status,
        user=user,
        review=seen,
        doc=seen.document,
        invoice=seen.invoice,
        commitment=seen.commitment,
        find=find or "",
        error=error,
        done=request.query_params.get("done"),
        form=form or {},
    )


@router.get("/documents/{document_id}")
async def document_page(request: Request, document_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return _to_sign_in(request)
    return await _document_page(request, user, document_id)


@router.get("/documents/{document_id}/raw")
async def document_raw(request: Request, document_id: str) -> Response:
    """The XML as received, as text (never rendered as markup by the browser)."""
    from einvoice.services import review

    user = await current_user(request)
    if user is None:
        return _to_sign_in(request)
    try:
        raw = await _in_db(request, review.raw_of, user, document_id)
    except NotFoundError:
        return _render(request, "error.html", 404, user=user, message="no such document")
    response = PlainTextResponse(raw.decode("utf-8", errors="replace"))
    response.headers.update(SECURITY_HEADERS)
    return response


#: Sent with an attachment: downloaded, never shown by the browser; were it opened anyway, it runs
#: in a sandbox with nothing allowed.
ATTACHMENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


def content_disposition(filename: str | None, number: int) -> str:
    """``attachment`` with the supplier's file name: an ASCII fallback and the name itself (RFC 6266)."""
    name = (filename or f"attachment-{number}").replace("\\", "/").rsplit("/", 1)[-1] or f"attachment-{number}"
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"%;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/documents/{document_id}/attachments/{number}")
async def document_attachment(request: Request, document_id: str, number: int) -> Response:
    """The document's ``number``-th attachment (as the page lists them), with its mime type and
    file name, as a download."""
    from einvoice.services import review

    user = await current_user(request)
    if user is None:
        return _to_sign_in(request)
    try:
        found = await _in_db(request, review.attachment, user, document_id, number)
    except NotFoundError:
        return _render(request, "error.html", 404, user=user, message="no such attachment")
    headers = {**ATTACHMENT_HEADERS, "Content-Disposition": content_disposition(found.filename, number)}
    return Response(found.content, media_type=found.mime_code, headers=headers)


@router.post("/documents/{document_id}/decision")
async def decision(request: Request, document_id: str) -> Response:
    from einvoice.services import review

    user = await current_user(request)
    if user is None:
        return _render(request, "error.html", 401, user=None, message="sign in first: the session ended")
    form = await request.form()
    if not sessions.same_token(user.csrf_token, str(form.get("csrf_token") or "")):
        return _render(request, "error.html", 403, user=user, message="the form expired or came from elsewhere")
    runtime = _runtime(request)
    pipeline = getattr(runtime, "pipeline", None)

    def next_message(state: str) -> str | None:
        if pipeline is None:
            return None
        stage = pipeline.registry.next_stage(state, pipeline.ports)
        return None if stage is None else str(stage.name)

    fields = {k: str(form.get(k) or "") for k in ("action", "reason", "comment", "commitment")}
    try:
        if fields["action"] == "rematch":
            uow_factory = runtime.uow_factory
            made = await in_database_thread(
                lambda: review.rematch(
                    uow_factory,
                    user,
                    document_id,
                    commitment=fields["commitment"],
                    reason=fields["reason"],
                    comment=fields["comment"],
                )
            )
        else:
            made = await _in_db(
                request,
                review.decide,
                user,
                document_id,
                action=fields["action"],
                reason=fields["reason"],
                comment=fields["comment"],
                next_message=next_message,
            )
    except NotFoundError as exc:
        if fields["action"] == "rematch":  # the commitment (the page itself answers 404 for the document)
            return await _document_page(request, user, document_id, error=str(exc), status=404, form=fields)
        return _render(request, "error.html", 404, user=user, message="no such document")
    except DecisionConflictError as exc:
        return await _document_page(request, user, document_id, error=str(exc), status=409, form=fields)
    except DecisionRefusedError as exc:
        return await _document_page(request, user, document_id, error=str(exc), status=422, form=fields)
    return RedirectResponse(f"/ui/documents/{document_id}?done={made.to_status}", status_code=303)


def install(app: Any) -> None:
    """Mount the pages and their static files on ``app``."""
    from fastapi.staticfiles import StaticFiles

    from einvoice.ui import admin

    app.include_router(router)
    app.include_router(admin.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
