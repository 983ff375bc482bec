"""The FastAPI application: ``create_app()`` assembles routers, problem handlers and the lifespan.

Nothing is built at import time. Without a runtime, the lifespan builds one from the settings at
startup (``einvoice.bootstrap.build``: given ones, else the environment's), starts its background
work (the in-process worker and outbox relay in embedded mode) and stops it at shutdown. A runtime
passed in belongs to the caller, who starts and stops it. The receipt signer is the runtime's.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi_offline import FastAPIOffline

from einvoice import __version__
from einvoice.api import (
    commitments,
    documents,
    erp,
    health,
    institutions,
    orders,
    problems,
    receipt_keys,
    validate,
    webhooks,
)
from einvoice.api.deps import Runtime
from einvoice.api.metrics import ApiMetrics
from einvoice.settings import Settings
from einvoice.ui import pages as ui_pages

DESCRIPTION = """
Intake of Peppol BIS Billing 3.0 (EN 16931, UBL 2.1) invoices and credit notes for the
institutions of the shared services centre.

**Authentication.** Supplier routes need the API key the service centre issued:
`Authorization: Bearer <key>`. A supplier sees only its own documents. Commitment routes need an
institution's key (`einvoice institutions new-key ENDPOINT`); an institution sees only its own.

**Flow.** `POST /v1/documents` stores the document and answers `202` with a signed receipt;
validation, matching and posting follow asynchronously. Poll the `status_url` (or list with
`GET /v1/documents?status=…&since=…`) for the outcome, findings and reports.

**Receipts** are Ed25519 signatures over the canonical JSON of id, sha256, supplier and time of
receipt; `GET /v1/receipt-keys` publishes the keys.

**Errors** are RFC 9457 problem details (`application/problem+json`) with `type`, `title`,
`detail`, and `findings` where there are any.
"""

OPENAPI_TAGS = [
    {"name": "documents", "description": "Submit invoices and credit notes, follow their processing"},
    {
        "name": "commitments",
        "description": "Institutions register the orders, contracts and frameworks invoices are matched against",
    },
    {"name": "institutions", "description": "An institution's chart of accounts and posting profile"},
    {"name": "validation", "description": "Check a document before sending it"},
    {"name": "webhooks", "description": "A supplier's URL that receives each new response, signed"},
    {"name": "receipts", "description": "Keys to verify intake receipts"},
    {"name": "operations", "description": "Health, readiness and metrics for operators"},
]


def create_app(runtime: Runtime | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Return the API application, wired to ``runtime`` or to one built at startup from ``settings``
    (default: the environment's)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(app.state, "runtime", None) is None:
            from einvoice.bootstrap import build

            owned = await run_in_threadpool(build, settings)
            app.state.runtime = owned
        try:
            app.state.signer = app.state.runtime.signer
            if owned is not None:
                await run_in_threadpool(owned.start_background)
                # What startup built lives as long as the process: kept out of the collector's
                # full passes, which otherwise walk all of it (~0.1 s each, every few hundred
                # requests, a pause every request in flight waits for).
                gc.collect()
                gc.freeze()
            yield
        finally:
            if owned is not None:
                gc.unfreeze()
                await run_in_threadpool(owned.stop)
                app.state.runtime = None

    # /docs (Swagger UI) and /redoc with their scripts and styles served from the package
    # (fastapi-offline ships them, under /static-offline-docs): a state system's network usually
    # has no way out to a CDN, and FastAPI's own pages load theirs from one.
    app = FastAPIOffline(
        title="einvoice",
        version=__version__,
        summary="E-invoice intake and processing for the shared services centre",
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    app.state.runtime = runtime
    app.state.api_metrics = ApiMetrics()
    if runtime is not None:
        app.state.signer = runtime.signer
    problems.install(app)
    app.include_router(documents.router)
    app.include_router(commitments.router)
    app.include_router(orders.orders)
    app.include_router(orders.despatch_advices)
    app.include_router(institutions.router)
    app.include_router(erp.router)
    app.include_router(validate.router)
    app.include_router(receipt_keys.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    ui_pages.install(app)

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>einvoice</title>"
            "<h1>einvoice</h1><ul>"
            '<li><a href="/docs">API documentation</a> (<a href="/redoc">ReDoc</a>, '
            '<a href="/openapi.json">OpenAPI</a>)</li>'
            '<li><a href="/ui/queue">Accountants\' pages</a> (sign in)</li>'
            '<li><a href="/v1/receipt-keys">Receipt keys</a></li>'
            '<li><a href="/healthz">Health</a>, <a href="/readyz">readiness</a>, '
            '<a href="/metrics">metrics</a></li></ul></html>'
        )

    return app
