"""Pydantic models of what the HTTP API answers: they shape the OpenAPI description and its examples."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_SHA = "9f2c4e7b1a0d3c5e8f6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
_ID = "0f4b2a9c7d1e4b8a9c3d5e6f7a8b9c0d"


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, served as ``application/problem+json``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "urn:einvoice:problem:not-well-formed",
                "title": "Not well-formed XML",
                "status": 400,
                "detail": "Opening and ending tag mismatch: Invoice line 2 and Invoic, line 40",
                "instance": "/v1/documents",
                "findings": [
                    {
                        "rule": "XML-WELL-FORMED",
                        "severity": "fatal",
                        "layer": "intake",
                        "message": "Opening and ending tag mismatch",
                        "line": 40,
                        "former_rule": "INTAKE-NOT-WELL-FORMED",
                    }
                ],
            }
        },
    )

    type: str = Field(description="URI naming the kind of problem (urn:einvoice:problem:<kind>)")
    title: str
    status: int
    detail: str
    instance: str | None = Field(None, description="The request path")
    findings: list[FindingModel] | None = Field(None, description="What was found, where there is anything")
    document_id: str | None = Field(None, description="Set when the refused document was still recorded")
    status_url: str | None = None


class FindingModel(BaseModel):
    """One thing a validation layer or a business check found (rule ids are the official ones)."""

    rule: str = Field(
        examples=["BR-CO-15"],
        description=(
            "The official rule id (BR-CO-15, PEPPOL-EN16931-R001, PEPPOL-T01-B00101), XSD for schema errors, or the "
            "engine's own: XML-WELL-FORMED, XML-SAFETY, XML-SIZE, DOCUMENT-TYPE, RULE-SELECTION, ENGINE, "
            "INTAKE-UNKNOWN-BUYER, INTAKE-SELLER-MISMATCH; the same id for the same problem on every route"
        ),
    )
    severity: Literal["fatal", "warning", "information"]
    layer: str = Field(examples=["en16931"], description="intake, xsd, en16931, peppol, business, engine")
    message: str
    location: str | None = Field(None, description="XPath of the offending node")
    line: int | None = None
    test: str | None = None
    value: str | None = None
    override: str | None = None
    former_rule: str | None = Field(
        None,
        deprecated=True,
        description=(
            "Only in problem details of POST /v1/documents, for one release: the id intake gave this problem "
            "before the one vocabulary (INTAKE-NOT-WELL-FORMED, INTAKE-UNSAFE-XML, INTAKE-TOO-LARGE, "
            "INTAKE-UNSUPPORTED-DOCUMENT); match on `rule`"
        ),
    )


class ReceiptPayload(BaseModel):
    id: str
    sha256: str
    supplier: str
    received_at: str = Field(description="UTC, ISO 8601 with microseconds and Z")


class Receipt(BaseModel):
    """Ed25519 signature over the canonical JSON (sorted keys, no whitespace, UTF-8) of ``payload``."""

    payload: ReceiptPayload
    alg: Literal["Ed25519"] = "Ed25519"
    kid: str = Field(description="Key id: first 16 hex digits of sha256 of the raw public key")
    signature: str = Field(description="base64url, no padding")


class SubmitResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": _ID,
                "status": "received",
                "sha256": _SHA,
                "received_at": "2026-11-22T08:30:01.123456Z",
                "status_url": f"/v1/documents/{_ID}",
                "suspected_duplicate_of": None,
                "receipt": {
                    "payload": {
                        "id": _ID,
                        "sha256": _SHA,
                        "supplier": "5c1d0e7f9a2b4c6d8e0f1a2b3c4d5e6f",
                        "received_at": "2026-11-22T08:30:01.123456Z",
                    },
                    "alg": "Ed25519",
                    "kid": "3f9a1c0b7e2d4a68",
                    "signature": "q1x…",
                },
            }
        }
    )

    id: str
    status: str
    sha256: str = Field(description="sha256 of the stored bytes, hex")
    received_at: datetime
    status_url: str
    suspected_duplicate_of: str | None = Field(
        None, description="Id of an earlier document with the same supplier, number (BT-1) and issue year"
    )
    receipt: Receipt


class Transition(BaseModel):
    from_status: str | None = Field(None, description="State before (none for the first)")
    to_status: str = Field(description="State after")
    actor: str = Field(description="Who or what made the transition: api, worker, an accountant's name")
    at: datetime
    detail: str | None = None


class Decision(BaseModel):
    """A person's decision on the document at the buyer (the accountants' pages)."""

    action: str = Field(description="approve, reject or query", examples=["reject"])
    by: str = Field(description="The user name of who decided")
    at: datetime
    from_status: str = Field(description="State before the decision")
    to_status: str = Field(
        description="State after: approved, awaiting_second_approval (four eyes), rejected, under_query"
    )
    reason: str | None = Field(
        None, description="Invoice Response status reason code (OPStatusReason: REF, PRI, QTY, …)", examples=["PRI"]
    )
    reason_text: str | None = Field(None, description="The code's meaning", examples=["Prices incorrect"])
    comment: str | None = Field(None, description="The words for the supplier: why, or what information is asked")


class SupplierResponse(BaseModel):
    """A response the buyer gave the supplier about the document: a Peppol Invoice Response (BIS
    63, T111) or Message Level Response (BIS 36, T71), fetched as XML at ``url``."""

    id: int = Field(description="The response's id within the engine", examples=[1])
    type: str = Field(description="invoice-response or message-level-response", examples=["invoice-response"])
    code: str = Field(
        description=(
            "Invoice Response status code (UNCL 4343 subset): IP in process (waiting for a person), UQ under "
            "query, RE rejected, AP accepted; RE for a Message Level Response (rejected by validation)"
        ),
        examples=["RE"],
    )
    issued_at: datetime
    reason: str | None = Field(
        None, description="Status reason code (OPStatusReason: REF, PRI, QTY, …, OTH)", examples=["PRI"]
    )
    action: str | None = Field(
        None, description="Status action code (OPStatusAction: NOA, PIN, NIN, CNF, CNP, CNA, OTH)", examples=["PIN"]
    )
    note: str | None = Field(None, description="Words for the supplier: why, or what information is asked")
    url: str = Field(
        description="Where its UBL ApplicationResponse XML is", examples=["/v1/documents/0f3c…/responses/1.xml"]
    )


class DocumentSummary(BaseModel):
    id: str
    status: str
    document_type: str | None = Field(None, description="invoice or credit_note")
    number: str | None = Field(None, description="BT-1 invoice number")
    issue_date: date | None = Field(None, description="BT-2")
    currency: str | None = Field(None, description="BT-5")
    payable_amount: str | None = Field(None, description="BT-115, a decimal as text")
    sha256: str
    received_at: datetime
    suspected_duplicate_of: str | None = None
    refusal_reason: str | None = Field(None, description="Why intake refused the document (status refused)")
    status_url: str


class DocumentDetail(DocumentSummary):
    history: list[Transition] = Field(default_factory=list)
    findings: list[FindingModel] = Field(default_factory=list)
    match_result: dict[str, Any] | None = None
    journal_ref: str | None = Field(None, description="Reference of the posted journal entry")
    decisions: list[Decision] = Field(
        default_factory=list,
        description="The buyer's decisions on the document, oldest first: approved, rejected (with a status "
        "reason code and words), put under query (with the question for the supplier)",
    )
    report_urls: dict[str, str] = Field(default_factory=dict)


class DocumentList(BaseModel):
    items: list[DocumentSummary]
    count: int


class ArtefactModel(BaseModel):
    """One official file the verdict rests on, as ``ubl_schemas/manifest.json`` records it."""

    id: str = Field(examples=["peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt"], description="<set>/<path>")
    layer: str = Field(examples=["peppol"], description="The layer that ran it: xsd, en16931, peppol")
    set: str = Field(examples=["peppol-bis3-2026.5"], description="The artefact set")
    version: str = Field(examples=["2026.5"], description="The set's version")
    path: str = Field(examples=["PEPPOL-EN16931-UBL.xslt"], description="The file inside the set")
    sha256: str


class DocumentReport(BaseModel):
    document_id: str
    status: str
    verdict: str = Field(description="valid, invalid or pending (not validated yet)")
    document_type: str | None = Field(None, description="As validated: Invoice or CreditNote")
    customization_id: str | None = Field(None, description="BT-24 as validated")
    rules: str | None = Field(
        None, examples=["peppol-bis3"], description="The rule set validation ran; null before validation"
    )
    rules_version: str | None = Field(None, examples=["2026.5"], description="The rule set's release")
    artefacts: list[ArtefactModel] = Field(default_factory=list, description="Every file validation ran, XSD first")
    findings: list[FindingModel]
    counts: dict[str, int] = Field(description="Findings by severity")


class ValidationResult(BaseModel):
    """The validation report: same shape as ``einvoice validate --format json``."""

    model_config = ConfigDict(extra="allow")

    valid: bool
    verdict: str
    rules: str | None = Field(None, examples=["peppol-bis3"], description="The rule set applied")
    rules_version: str | None = Field(None, examples=["2026.5"], description="The rule set's release")
    artefacts: list[ArtefactModel] = Field(default_factory=list, description="Every file validation ran, XSD first")
    findings: list[FindingModel] = Field(default_factory=list)


class PublicKey(BaseModel):
    """A JSON Web Key (RFC 8037)."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    alg: Literal["Ed25519"] = "Ed25519"
    use: str = "sig"
    kid: str
    x: str = Field(description="Raw 32-byte public key, base64url")


class ReceiptKeys(BaseModel):
    current: str = Field(description="kid of the key that signs new receipts")
    keys: list[PublicKey]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(
        description="Each dependency and 'ok' or 'unavailable' (the reason is in the server's log)"
    )


ProblemDetails.model_rebuild()
