"""``GET /v1/receipt-keys``: the public keys that verify intake receipts (current first, then retired)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from einvoice.api.deps import SignerDep
from einvoice.api.models import PublicKey, ReceiptKeys

router = APIRouter(tags=["receipts"])


@router.get(
    "/v1/receipt-keys",
    summary="Public keys of the receipt signatures",
    description=(
        "JSON Web Keys (RFC 8037, OKP/Ed25519). A receipt verifies when the key whose `kid` it names "
        "accepts its `signature` over the canonical JSON (sorted keys, no whitespace, UTF-8) of its "
        "`payload`. Retired keys stay listed, so receipts signed before a key rotation keep verifying. "
        "No authentication."
    ),
)
def receipt_keys(signer: SignerDep, response: Response) -> ReceiptKeys:
    response.headers["Cache-Control"] = "public, max-age=300"
    return ReceiptKeys(current=signer.kid, keys=[PublicKey.model_validate(jwk) for jwk in signer.public_keys()])
