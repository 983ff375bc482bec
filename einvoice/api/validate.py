"""``POST /v1/validate``: validate a document without storing it, for suppliers to check before sending."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from einvoice.api.deps import XML_REQUEST_BODY, DocumentBytes, SupplierDep
from einvoice.api.documents import AUTH_PROBLEMS, COMMON_PROBLEMS, problem_doc
from einvoice.api.models import ValidationResult

router = APIRouter(tags=["validation"], responses=COMMON_PROBLEMS)


@router.post(
    "/v1/validate",
    summary="Validate without storing",
    description=(
        "Runs the same layers as the pipeline (UBL 2.1 XSD, EN 16931, Peppol BIS 3) and answers the "
        "report at once; nothing is stored. Peppol Orders (T01), Despatch Advices (T16), Invoice "
        "Responses (T111) and Message Level Responses (T71) are validated too, with their XSD and "
        "rules, chosen by `cbc:CustomizationID`. The report names the rule set, its version "
        "(`rules`, `rules_version`) and every artefact run (`artefacts`). `200` whatever the verdict, "
        "`valid` tells: XML that is not well-formed, refused (DOCTYPE) or of a type no rule set "
        "covers gets a report whose intake finding says why. Validation runs in a subprocess held to "
        "the engine's time and memory limits: a document over them gets the verdict `invalid` with a "
        "`VALIDATION-LIMIT` finding and the findings up to then; a report keeps at most "
        "`EINVOICE_VALIDATION_FINDINGS_PER_RULE` findings of each rule (a `FINDINGS-CAPPED` finding "
        "counts the rest). Needs the API key, so that validation "
        "capacity serves registered suppliers."
    ),
    openapi_extra=XML_REQUEST_BODY,
    response_model=ValidationResult,
    responses={
        200: {"content": {"text/html": {}}, "description": "The report (JSON, or HTML with format=html)"},
        **AUTH_PROBLEMS,
        413: problem_doc("Larger than the configured limit"),
        415: problem_doc("Content-Type is neither XML nor a multipart upload"),
    },
)
async def validate_document(
    request: Request,
    supplier: SupplierDep,
    raw: DocumentBytes,
    format: Annotated[Literal["json", "html"], Query(description="Report format")] = "json",
) -> Any:
    # A subprocess validates; this thread only waits for it, so the event loop and every other
    # request go on meanwhile (saxonche in this process held the interpreter for the whole run).
    pool = request.app.state.runtime.validation_pool
    report = await run_in_threadpool(pool.validate, raw)
    if format == "html":
        return HTMLResponse(report.to_html())
    return JSONResponse(report.to_dict())
