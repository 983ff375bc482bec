"""Liveness, readiness and metrics: what operators and load balancers poll. No authentication."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from einvoice.api import metrics as prometheus
from einvoice.api.deps import RuntimeDep
from einvoice.api.models import Health, Readiness

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable, validation artefacts loaded",
    responses={503: {"model": Readiness, "description": "A dependency is not ready"}},
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Each check "ok" or "unavailable". The reason a check failed (a driver's error names hosts
    and ports) goes to the log, never into this unauthenticated answer."""
    try:
        found = {name: str(value) for name, value in runtime.check_ready().items()}
    except Exception as exc:  # readiness must answer, whatever broke
        found = {"runtime": f"{type(exc).__name__}: {exc}"}
    checks = {}
    for name, value in found.items():
        if value != "ok":
            log.warning("not ready: %s: %s", name, value)
        checks[name] = "ok" if value == "ok" else "unavailable"
    ready = bool(checks) and all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Documents by state, queue lag, stage latencies, submission latency (text format 0.0.4).",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": 'einvoice_documents{status="validated"} 12\n'}}}},
)
def metrics(request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    from einvoice.services.queries import metrics as snapshot_of

    with runtime.uow_factory() as uow:
        snapshot = snapshot_of(uow)
    families = prometheus.snapshot_families(snapshot)
    api_metrics: prometheus.ApiMetrics = request.app.state.api_metrics
    families += api_metrics.families()
    return PlainTextResponse(prometheus.render(families), media_type=prometheus.CONTENT_TYPE)
