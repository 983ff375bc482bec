"""``/v1/webhook``: a supplier's webhook, where each new response to it (Invoice Response or MLR)
is POSTed, signed (``services.webhooks``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from einvoice.api.deps import RuntimeDep, SupplierDep, in_database_thread
from einvoice.api.documents import AUTH_PROBLEMS, COMMON_PROBLEMS, problem_doc

router = APIRouter(prefix="/v1/webhook", tags=["webhooks"], responses=COMMON_PROBLEMS)
NO_WEBHOOK: dict[int | str, dict[str, Any]] = {404: problem_doc("No webhook registered")}

DELIVERY = (
    "Each new response to the supplier (as listed by `GET /v1/documents/{id}/responses`, plus "
    "`document_id`) is POSTed to `url` as JSON with `X-Einvoice-Signature: sha256=<hex HMAC-SHA256 of "
    "the body with the secret>` and `X-Einvoice-Delivery: <id>` (the same id on every attempt: "
    "deliveries are at least once, so a receiver drops an id it has seen). Any answer but 2xx, or "
    "none, is retried with exponential backoff and jitter; after the last attempt the delivery is "
    "dead-lettered and listed in `recent_failures`. Responses issued before the webhook was "
    "registered are not sent."
)


class WebhookIn(BaseModel):
    url: str = Field(description="https:// URL (http:// only to 127.0.0.1 or localhost when the engine allows it)")


class WebhookFailure(BaseModel):
    delivery_id: str
    document_id: str
    response_id: int
    attempts: int
    last_error: str
    failed_at: str | None


class WebhookOut(BaseModel):
    url: str
    created_at: str
    rotated_at: str | None = Field(description="When the secret was last rotated (null: never)")


class WebhookRegistered(WebhookOut):
    secret: str = Field(description="The signing secret, shown only in this answer: keep it")


class WebhookShown(WebhookOut):
    recent_failures: list[WebhookFailure] = Field(description="Dead-lettered deliveries, newest first (at most 20)")


@router.put(
    "",
    summary="Register the supplier's webhook, or replace it and rotate its secret",
    description="Answers the new signing secret, once. " + DELIVERY,
    responses={**AUTH_PROBLEMS, 422: problem_doc("Not an https URL (invalid-webhook)")},
)
async def put_webhook(runtime: RuntimeDep, supplier: SupplierDep, body: WebhookIn) -> WebhookRegistered:
    from einvoice.services import webhooks

    def put() -> WebhookRegistered:
        view, secret = webhooks.register(
            _store(runtime),
            supplier.id,
            body.url,
            allow_http_localhost=runtime.settings.webhook_allow_http_localhost,
        )
        return WebhookRegistered(**view, secret=secret)

    return await in_database_thread(put)


@router.get(
    "",
    summary="The supplier's webhook and its dead-lettered deliveries (never the secret)",
    description=DELIVERY,
    responses={**AUTH_PROBLEMS, **NO_WEBHOOK},
)
async def get_webhook(runtime: RuntimeDep, supplier: SupplierDep) -> WebhookShown:
    from einvoice.services import webhooks

    shown = await in_database_thread(webhooks.show, _store(runtime), supplier.id)
    return WebhookShown(**shown)


@router.delete(
    "",
    status_code=204,
    summary="Remove the supplier's webhook (deliveries still pending are dropped)",
    responses={**AUTH_PROBLEMS, **NO_WEBHOOK},
)
async def delete_webhook(runtime: RuntimeDep, supplier: SupplierDep) -> Response:
    from einvoice.services import webhooks

    await in_database_thread(webhooks.remove, _store(runtime), supplier.id)
    return Response(status_code=204)


def _store(runtime: Any) -> Any:
    store = runtime.pipeline.webhooks
    if store is None:  # a runtime built without one (never by bootstrap.build)
        from einvoice.store.webhooks import SqlWebhookStore

        store = runtime.pipeline.webhooks = SqlWebhookStore.for_engine(runtime.engine)
    return store
