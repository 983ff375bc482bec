"""Signed intake receipts: proof for a supplier that the engine stored exactly these bytes at this time.

A receipt is an Ed25519 signature over the canonical JSON (sorted keys, no whitespace, UTF-8) of
``{"id", "sha256", "supplier", "received_at"}``. Anyone can check it with the public keys that
``GET /v1/receipt-keys`` publishes; the key id (``kid``) is the first 16 hex digits of the sha256 of
the raw 32-byte public key.

Key rotation: the current private key lives in ``Settings.effective_signing_key_file``. Public keys
of earlier keys (PEM, one per file, ``*.pem``) placed in the folder ``retired-receipt-keys`` next to
it stay published, so receipts signed before a rotation keep verifying. ``rotate_signing_key``
does both steps.

Ed25519 signatures are deterministic: signing the same payload twice gives the same receipt, so a
repeated submission gets back exactly the receipt of the first one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from einvoice.errors import ConfigurationError
from einvoice.settings import Settings

ALGORITHM = "Ed25519"
RETIRED_KEYS_DIR = "retired-receipt-keys"
PAYLOAD_FIELDS = ("id", "sha256", "supplier", "received_at")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON bytes of ``value``: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Return the key id: the first 16 hex digits of the sha256 of the raw public key."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """Return ``key`` as a JSON Web Key (RFC 8037, OKP/Ed25519) with its ``kid``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": ALGORITHM,
        "use": "sig",
        "kid": key_id(key),
        "x": _b64url(_raw_public(key)),
    }


def format_time(moment: datetime) -> str:
    """Return ``moment`` as the receipt writes it: UTC, ISO 8601, microseconds, ``Z``."""
    if moment.tzinfo is None:  # the store keeps naive UTC on some databases
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ReceiptSigner:
    """The current signing key plus the public keys that stay published after rotations."""

    private_key: Ed25519PrivateKey
    retired: tuple[Ed25519PublicKey, ...] = field(default=())

    @functools.cached_property
    def kid(self) -> str:  # worked out once: every receipt names it
        return key_id(self.private_key.public_key())

    def public_keys(self) -> list[dict[str, str]]:
        """Return the published keys as JWKs, the current key first."""
        keys = [public_jwk(self.private_key.public_key())]
        seen = {keys[0]["kid"]}
        for key in self.retired:
            jwk = public_jwk(key)
            if jwk["kid"] not in seen:
                seen.add(jwk["kid"])
                keys.append(jwk)
        return keys

    def sign(self, document_id: str, sha256: str, supplier: str, received_at: datetime | str) -> dict[str, Any]:
        """Return a receipt: ``{"payload", "alg", "kid", "signature"}`` (signature base64url)."""
        payload = {
            "id": str(document_id),
            "sha256": sha256,
            "supplier": str(supplier),
            "received_at": received_at if isinstance(received_at, str) else format_time(received_at),
        }
        signature = self.private_key.sign(canonical_json(payload))
        return {"payload": payload, "alg": ALGORITHM, "kid": self.kid, "signature": _b64url(signature)}


def sign_receipt(
    document_id: str, sha256: str, supplier: str, received_at: datetime | str, *, signer: ReceiptSigner
) -> dict[str, Any]:
    """Return the signed receipt of one stored document (see ``ReceiptSigner.sign``)."""
    return signer.sign(document_id, sha256, supplier, received_at)


def _as_public_key(value: Ed25519PublicKey | Mapping[str, Any] | bytes | str) -> Ed25519PublicKey | None:
    try:
        if isinstance(value, Ed25519PublicKey):
            return value
        if isinstance(value, bytes):
            return Ed25519PublicKey.from_public_bytes(value)
        if isinstance(value, str):
            return Ed25519PublicKey.from_public_bytes(_b64url_decode(value))
        if isinstance(value, Mapping) and isinstance(value.get("x"), str):
            return Ed25519PublicKey.from_public_bytes(_b64url_decode(value["x"]))
    except (ValueError, TypeError):
        return None
    return None


def verify_receipt(
    receipt: Mapping[str, Any],
    public_keys: Mapping[str, Ed25519PublicKey | bytes | str] | Iterable[Mapping[str, Any] | Ed25519PublicKey],
) -> bool:
    """Return True when ``receipt`` carries a valid Ed25519 signature by one of ``public_keys``.

    ``public_keys`` is either a mapping kid -> key (object, raw bytes or base64url text), or a list
    as ``GET /v1/receipt-keys`` publishes it (JWKs; the ``{"keys": [...]}`` wrapper is accepted too).
    The kid a key is looked up under is recomputed from the key, never trusted from the list.
    Never raises on malformed input: anything that does not verify is False.
    """
    try:
        if receipt.get("alg") != ALGORITHM:
            return False
        payload = receipt["payload"]
        if not isinstance(payload, Mapping) or set(payload) != set(PAYLOAD_FIELDS):
            return False
        signature = _b64url_decode(str(receipt["signature"]))
        kid = receipt.get("kid")
    except (KeyError, TypeError, ValueError, AttributeError):
        return False

    if isinstance(public_keys, Mapping) and "keys" in public_keys and isinstance(public_keys["keys"], list):
        candidates: Iterable[Any] = public_keys["keys"]
    elif isinstance(public_keys, Mapping):
        candidates = public_keys.values()
    else:
        candidates = public_keys
    message = canonical_json(payload)
    for candidate in candidates:
        key = _as_public_key(candidate)
        if key is None or key_id(key) != kid:
            continue
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            return False
    return False


# --- key files ---------------------------------------------------------------------------------


def _write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to ``path`` (mode 0600) unless the file exists; concurrent starts keep one key."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process generated it first: use that one
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the receipt signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"the receipt signing key {path} is not an Ed25519 key")
    return key


def _read_retired(folder: Path) -> tuple[Ed25519PublicKey, ...]:
    keys: list[Ed25519PublicKey] = []
    if not folder.is_dir():
        return ()
    for path in sorted(folder.glob("*.pem")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise ConfigurationError(f"cannot read the retired receipt key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError(f"the retired receipt key {path} is not an Ed25519 key")
        keys.append(key)
    return tuple(keys)


def load_signer(settings: Settings) -> ReceiptSigner:
    """Return the signer for ``settings``.

    In embedded mode a missing key file is generated (mode 0600). Outside embedded mode a missing
    or unreadable key is a ConfigurationError: a production receipt key is given, never invented.
    """
    path = settings.effective_signing_key_file
    if not path.exists():
        if settings.mode != "embedded":
            raise ConfigurationError(f"receipt signing key {path} does not exist (EINVOICE_SIGNING_KEY_FILE)")
        _write_private_key(path, Ed25519PrivateKey.generate())
    return ReceiptSigner(_read_private_key(path), _read_retired(path.parent / RETIRED_KEYS_DIR))


def rotate_signing_key(settings: Settings, *, now: datetime | None = None) -> ReceiptSigner:
    """Retire the current key (its public half stays published) and write a new one; return the new signer."""
    path = settings.effective_signing_key_file
    old = _read_private_key(path)
    retired = path.parent / RETIRED_KEYS_DIR
    retired.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    public_pem = old.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (retired / f"{stamp}-{key_id(old.public_key())}.pem").write_bytes(public_pem)
    replacement = path.with_name(path.name + ".new")
    replacement.unlink(missing_ok=True)
    _write_private_key(replacement, Ed25519PrivateKey.generate())
    os.replace(replacement, path)
    return load_signer(settings)
