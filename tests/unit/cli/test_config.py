import json

import pytest
from typer.testing import CliRunner

from einvoice.cli import app

runner = CliRunner()


def _rows(output: str) -> dict[str, dict[str, str]]:
    return {row["name"]: row for row in json.loads(output)}


def test_config_shows_the_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert rows["database_url"]["value"].endswith("einvoice.db")
    assert rows["database_url"]["source"] == "derived"
    assert rows["broker_url"]["value"] == "in-process queue"
    assert rows["data_dir"]["source"] == "environment"


def test_config_masks_passwords_and_tokens_and_flags_missing_production_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EINVOICE_MODE", "production")
    monkeypatch.setenv("EINVOICE_DATABASE_URL", "postgresql+psycopg://app:s3cret@db:5432/einvoice")
    monkeypatch.setenv("EINVOICE_ERP_CONNECTOR", "http")
    monkeypatch.setenv("EINVOICE_ERP_TOKEN", "tok-123")
    monkeypatch.delenv("EINVOICE_BROKER_URL", raising=False)
    result = runner.invoke(app, ["config", "--json"])
    assert "s3cret" not in result.output
    assert "tok-123" not in result.output
    rows = _rows(result.stdout)
    assert rows["database_url"]["value"] == "postgresql+psycopg://app:***@db:5432/einvoice"
    assert rows["erp_token"]["value"] == "***"
    assert result.exit_code == 2
    assert "EINVOICE_BROKER_URL" in result.stderr
