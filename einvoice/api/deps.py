"""Request dependencies, as ``Annotated`` aliases: the runtime, the receipt signer, the caller, the body."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.formparsers import MultiPartException, MultiPartParser

from einvoice.errors import AuthenticationError, DocumentTooLargeError
from einvoice.receipts import ReceiptSigner
from einvoice.services import InstitutionView, SupplierView
from einvoice.services.erp import ErpView
from einvoice.settings import Settings
from einvoice.store import UnitOfWork


class Runtime(Protocol):
    """What the API needs of ``einvoice.bootstrap.Runtime`` (tests pass in-memory twins)."""

    settings: Settings
    uow_factory: Callable[[], UnitOfWork]

    @property
    def signer(self) -> ReceiptSigner:
        """The receipt signer (``bootstrap.Runtime.signer``)."""
        ...

    def check_ready(self) -> dict[str, str]: ...


T = TypeVar("T")

XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})
MULTIPART = "multipart/form-data"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file in an upload

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="SupplierApiKey",
    description="The API key the service centre issued to the supplier: `Authorization: Bearer <key>`.",
)


# Dependencies are ``async def`` where they do no I/O: FastAPI runs a plain ``def`` dependency in
# the thread pool, a hop to another thread and back for each one on every request. The busiest
# routes take the runtime and the signer from ``request.app.state`` rather than as dependencies:
# FastAPI's resolving costs tens of microseconds per dependency and request.


async def get_runtime(request: Request) -> Runtime:
    """Return the runtime the app was started with (set by the lifespan or by ``create_app``)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_signer(request: Request) -> ReceiptSigner:
    signer: ReceiptSigner = request.app.state.signer
    return signer


#: Requests that work in the database at once, in threads. Fewer than the engine's pool
#: (``store.engine.POOL_SIZE``), which also serves the outbox relay, the sweeper, metrics and
#: readiness: a request waits here, in the event loop, rather than making the pool open (and
#: later close) connections beyond it. Two cores run no more than a few transactions' CPU at a
#: time; the rest of the tokens cover waits (a commit's flush, a lock on a document number).
DATABASE_CONCURRENCY = 10


_database_limiter: RunVar[anyio.CapacityLimiter] = RunVar("einvoice_database_limiter")


def database_limiter() -> anyio.CapacityLimiter:
    """The limiter of this event loop (one per loop, as anyio keeps its default thread limiter)."""
    try:
        return _database_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(DATABASE_CONCURRENCY)
        _database_limiter.set(limiter)
        return limiter


async def in_database_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` (which uses the database) in a worker thread, at most
    ``DATABASE_CONCURRENCY`` of them at once; return its result."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=database_limiter())


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SignerDep = Annotated[ReceiptSigner, Depends(get_signer)]


def _holder(runtime: Runtime, authenticate: Callable[[UnitOfWork, str], T | None], api_key: str) -> T | None:
    with runtime.uow_factory() as uow:
        return authenticate(uow, api_key)


async def _key_holder(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    authenticate: Callable[[UnitOfWork, str], T | None],
    *,
    missing: str,
    unknown: str,
) -> T:
    """Who holds the API key the request carries (``authenticate``: the service that says so);
    AuthenticationError (401) with ``missing`` when there is no key, ``unknown`` when no one holds
    it. Looked up on every request, never cached: a key deactivated or replaced is refused by every
    API process from the next request on (one indexed read)."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError(missing)
    holder = await in_database_thread(_holder, request.app.state.runtime, authenticate, credentials.credentials)
    if holder is None:
        raise AuthenticationError(unknown)
    return holder


async def current_supplier(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> SupplierView:
    """Return the supplier whose API key the request carries; raise AuthenticationError (401) otherwise."""
    from einvoice.services.accounts import authenticate_supplier

    supplier = await _key_holder(
        request,
        credentials,
        authenticate_supplier,
        missing="send the supplier API key as 'Authorization: Bearer <key>'",
        unknown="unknown or revoked API key",
    )
    request.state.supplier_id = supplier.id  # named in the log line of a refusal that follows
    return supplier


SupplierDep = Annotated[SupplierView, Depends(current_supplier)]

institution_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="InstitutionApiKey",
    description="The API key of a buyer institution (`einvoice institutions new-key ENDPOINT`): "
    "`Authorization: Bearer <key>`.",
)


async def current_institution(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(institution_bearer_scheme)],
) -> InstitutionView:
    """Return the institution whose API key the request carries; raise AuthenticationError (401)
    otherwise. A key replaced by ``institutions new-key`` is refused from the next request on."""
    from einvoice.services.accounts import authenticate_institution

    institution = await _key_holder(
        request,
        credentials,
        authenticate_institution,
        missing="send the institution API key as 'Authorization: Bearer <key>'",
        unknown="unknown or replaced institution API key",
    )
    request.state.institution_id = institution.id  # named in the log line of a refusal that follows
    return institution


InstitutionDep = Annotated[InstitutionView, Depends(current_institution)]

erp_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ErpApiKey",
    description="The API key of an ERP (`einvoice erp add --institution ENDPOINT --name NAME`): "
    "`Authorization: Bearer <key>`; it reaches the entries and documents of the institutions it serves only.",
)


async def current_erp(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(erp_bearer_scheme)],
) -> ErpView:
    """Return the ERP whose API key the request carries; raise AuthenticationError (401) otherwise."""
    from einvoice.services.erp import authenticate_erp

    return await _key_holder(
        request,
        credentials,
        authenticate_erp,
        missing="send the ERP's API key as 'Authorization: Bearer <key>'",
        unknown="unknown ERP API key",
    )


ErpDep = Annotated[ErpView, Depends(current_erp)]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_xml_media_type(media: str) -> bool:
    return media in XML_MEDIA_TYPES or (media.startswith("application/") and media.endswith("+xml"))


def _too_large(limit: int) -> DocumentTooLargeError:
    return DocumentTooLargeError(f"the document exceeds the limit of {limit} bytes")


async def _bounded(request: Request, cap: int, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body as it arrives; DocumentTooLargeError (naming ``limit``) as soon as more
    than ``cap`` bytes have come, whatever the body's framing (Content-Length or chunked)."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise _too_large(limit)
        yield chunk


async def _multipart_file(request: Request, limit: int) -> bytes:
    """The file of a ``multipart/form-data`` upload (the part named ``file``, else the first file),
    parsed while the body streams in, with the size limit enforced as it does: at most ``limit``
    bytes of file plus ``MULTIPART_OVERHEAD`` are read, and all of it is kept in memory (Starlette
    spools parts over 1 MiB to a temporary file, which a chunked upload filled in full before any
    check)."""
    cap = limit + MULTIPART_OVERHEAD
    parser = MultiPartParser(request.headers, _bounded(request, cap, limit), max_files=1, max_fields=8)
    parser.spool_max_size = cap  # never to disk: the stream stops at ``cap``
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"the multipart upload is malformed: {exc.message}") from None
    try:
        uploads: list[Any] = [v for _, v in form.multi_items() if hasattr(v, "read")]
        named = form.get("file")
        upload = named if hasattr(named, "read") else (uploads[0] if uploads else None)
        if upload is None:
            raise HTTPException(422, "the multipart upload has no file part (name it 'file')")
        data: bytes = await upload.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise _too_large(limit)
    return data


async def document_bytes(request: Request) -> bytes:
    """Return the document the request carries, read with the size limit enforced while reading.

    The body is the XML itself (``application/xml``, ``text/xml`` or ``application/*+xml``) or a
    ``multipart/form-data`` upload (the part named ``file``, else the first file); either is read
    in memory and refused as soon as it passes the limit, before the rest arrives. Raises
    DocumentTooLargeError (413) past ``max_document_bytes`` and answers 415 for other media types.
    """
    limit = request.app.state.runtime.settings.max_document_bytes
    media = _media_type(request)
    declared = request.headers.get("content-length", "")
    allowance = MULTIPART_OVERHEAD if media == MULTIPART else 0
    if declared.isdigit() and int(declared) > limit + allowance:
        raise _too_large(limit)

    if is_xml_media_type(media):
        body = bytearray()
        async for chunk in _bounded(request, limit, limit):
            body += chunk
        return bytes(body)

    if media == MULTIPART:
        return await _multipart_file(request, limit)

    raise HTTPException(
        415,
        f"send the UBL document as application/xml (or as a multipart/form-data file upload), "
        f"not {media or 'a body without Content-Type'}",
    )


DocumentBytes = Annotated[bytes, Depends(document_bytes)]

XML_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A UBL 2.1 Invoice or CreditNote (Peppol BIS Billing 3.0).",
        "content": {
            "application/xml": {
                "schema": {"type": "string", "format": "binary"},
                "example": '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">…</Invoice>',
            },
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
