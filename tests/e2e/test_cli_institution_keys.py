"""``einvoice institutions new-key`` and ``set-tolerances`` against a data directory, and the key at
work over HTTP: it registers commitments of its own institution only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from einvoice.api import create_app
from einvoice.cli import app
from einvoice.settings import Settings
from tests.e2e.documents import commitment
from tests.e2e.test_api_commitments import EXAMPLE, SUPPLIER_ENDPOINT, SUPPLIER_VAT

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    return tmp_path


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_new_key_prints_a_key_that_registers_the_institutions_commitments(data_dir: Path) -> None:
    from einvoice.bootstrap import build

    assert run("institutions", "add", "--name", "Ministry", "--endpoint", "0192:987654325").exit_code == 0
    assert run("institutions", "add", "--name", "Agency", "--endpoint", "0192:987654326", "--unchecked").exit_code == 0
    supplier = ("suppliers", "add", "--name", "Paper SIA", "--endpoint", SUPPLIER_ENDPOINT, "--vat", SUPPLIER_VAT)
    assert run(*supplier, "--unchecked").exit_code == 0
    issued = run("institutions", "new-key", "0192:987654325")
    assert issued.exit_code == 0, issued.output
    key = issued.output.strip().splitlines()[-1]
    assert key.startswith("eik_")
    assert run("institutions", "list").output.count(key) == 0
    other_key = run("institutions", "new-key", "0192:987654326").output.strip().splitlines()[-1]

    shown = run("institutions", "set-tolerances", "0192:987654325", "--price-percent", "2", "--price-amount", "1.00")
    assert shown.exit_code == 0, shown.output
    assert "price_percent 2, price_amount 1.00" in shown.output

    runtime = build(Settings(data_dir=data_dir))
    try:
        client = TestClient(create_app(runtime))
        body = commitment("PO-CLI")
        del body["tolerances"]
        created = client.post("/v1/commitments", json=body, headers={"Authorization": f"Bearer {key}"})
        assert created.status_code == 201, created.text
        assert created.json()["tolerances"]["price_percent"] == "2"
        assert created.json()["tolerances"]["price_amount"] == "1.00"
        assert created.json()["tolerances"]["quantity_percent"] is None
        elsewhere = client.get("/v1/commitments/PO-CLI", headers={"Authorization": f"Bearer {other_key}"})
        assert elsewhere.status_code == 404

        replaced = run("institutions", "new-key", "0192:987654325").output.strip().splitlines()[-1]
        assert replaced != key
        old = client.post("/v1/commitments", json=EXAMPLE, headers={"Authorization": f"Bearer {key}"})
        assert old.status_code == 401
    finally:
        runtime.stop()


def test_new_key_and_set_tolerances_refuse_what_they_cannot_do(data_dir: Path) -> None:
    unknown = run("institutions", "new-key", "0192:987654325")
    assert unknown.exit_code == 1
    assert "no institution with endpoint 0192:987654325" in unknown.output
    assert run("institutions", "new-key", "987").exit_code == 1
    assert run("institutions", "add", "--name", "Ministry", "--endpoint", "0192:987654325").exit_code == 0
    negative = run("institutions", "set-tolerances", "0192:987654325", "--price-percent", "-1")
    assert negative.exit_code == 1
    assert "--price-percent: must not be negative" in negative.output
    assert run("institutions", "set-tolerances", "0192:987654325", "--amount-amount", "1e3").exit_code == 1
    exact = run("institutions", "set-tolerances", "0192:987654325")
    assert exact.exit_code == 0
    assert "default tolerances exact" in exact.output
