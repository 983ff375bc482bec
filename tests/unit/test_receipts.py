"""Receipts: canonical JSON, Ed25519 signatures, key ids, key files and rotation."""

from __future__ import annotations

import copy
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from einvoice.errors import ConfigurationError
from einvoice.receipts import (
    ReceiptSigner,
    canonical_json,
    key_id,
    load_signer,
    rotate_signing_key,
    sign_receipt,
    verify_receipt,
)
from einvoice.settings import Settings

WHEN = datetime(2026, 11, 22, 8, 30, 1, 123456, tzinfo=UTC)
SHA = hashlib.sha256(b"<Invoice/>").hexdigest()


@pytest.fixture
def signer() -> ReceiptSigner:
    return ReceiptSigner(Ed25519PrivateKey.generate())


def test_canonical_json_sorts_keys_without_whitespace_in_utf8() -> None:
    assert canonical_json({"b": 1, "a": "ä"}) == '{"a":"ä","b":1}'.encode()


def test_key_id_is_first_16_hex_of_sha256_of_raw_public_key(signer: ReceiptSigner) -> None:
    raw = signer.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(signer.private_key.public_key()) == hashlib.sha256(raw).hexdigest()[:16]
    assert signer.kid == signer.public_keys()[0]["kid"]


def test_receipt_shape_and_verification(signer: ReceiptSigner) -> None:
    receipt = sign_receipt("42", SHA, "7", WHEN, signer=signer)
    assert receipt["alg"] == "Ed25519"
    assert receipt["kid"] == signer.kid
    assert receipt["payload"] == {
        "id": "42",
        "sha256": SHA,
        "supplier": "7",
        "received_at": "2026-11-22T08:30:01.123456Z",
    }
    assert "=" not in receipt["signature"]
    assert verify_receipt(receipt, signer.public_keys())
    assert verify_receipt(receipt, {"keys": signer.public_keys()})
    assert verify_receipt(receipt, {signer.kid: signer.private_key.public_key()})


def test_signing_is_deterministic(signer: ReceiptSigner) -> None:
    assert signer.sign("1", SHA, "7", WHEN) == signer.sign("1", SHA, "7", WHEN)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "43"), ("sha256", "0" * 64), ("supplier", "8"), ("received_at", "2026-11-22T08:30:02.000000Z")],
)
def test_tampered_payload_fails(signer: ReceiptSigner, field: str, value: str) -> None:
    receipt = signer.sign("42", SHA, "7", WHEN)
    tampered = copy.deepcopy(receipt)
    tampered["payload"][field] = value
    assert not verify_receipt(tampered, signer.public_keys())


def test_wrong_key_extra_field_and_garbage_fail(signer: ReceiptSigner) -> None:
    receipt = signer.sign("42", SHA, "7", WHEN)
    other = ReceiptSigner(Ed25519PrivateKey.generate())
    assert not verify_receipt(receipt, other.public_keys())
    # a list that claims the right kid for a different key must not help
    forged = other.public_keys()[0] | {"kid": signer.kid}
    assert not verify_receipt(receipt, [forged])
    extra = copy.deepcopy(receipt)
    extra["payload"]["note"] = "x"
    assert not verify_receipt(extra, signer.public_keys())
    assert not verify_receipt({**receipt, "signature": "!!"}, signer.public_keys())
    assert not verify_receipt({**receipt, "alg": "HS256"}, signer.public_keys())
    assert not verify_receipt({}, signer.public_keys())


def test_naive_time_counts_as_utc(signer: ReceiptSigner) -> None:
    naive = WHEN.replace(tzinfo=None)
    assert signer.sign("1", SHA, "7", naive) == signer.sign("1", SHA, "7", WHEN)


def test_embedded_mode_generates_key_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_signer(settings)
    path = settings.effective_signing_key_file
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signer(settings).kid == first.kid


def test_production_mode_refuses_missing_key(tmp_path: Path) -> None:
    settings = Settings(mode="production", data_dir=tmp_path, signing_key_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_signer(settings)
    assert not (tmp_path / "missing.pem").exists()


def test_production_mode_reads_given_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings = Settings(mode="production", data_dir=tmp_path, signing_key_file=path)
    assert load_signer(settings).kid == key_id(key.public_key())


def test_wrong_key_type_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigurationError):
        load_signer(Settings(data_dir=tmp_path, signing_key_file=path))


def test_rotation_keeps_old_receipts_verifying(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    old = load_signer(settings)
    receipt = old.sign("1", SHA, "7", WHEN)
    new = rotate_signing_key(settings)
    assert new.kid != old.kid
    published = new.public_keys()
    assert [k["kid"] for k in published] == [new.kid, old.kid]
    assert verify_receipt(receipt, published)
    assert verify_receipt(new.sign("2", SHA, "7", WHEN), published)
    assert load_signer(settings).kid == new.kid
