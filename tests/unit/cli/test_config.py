import json
from pathlib import Path

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


def test_config_lists_every_setting_with_its_variable_and_masks_the_broker_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EINVOICE_BROKER_URL", "amqp://mq:hunter2@mq:5672/%2F")
    monkeypatch.setenv("EINVOICE_WORKER_THREADS", "2")
    result = runner.invoke(app, ["config", "--json"])
    assert "hunter2" not in result.output
    rows = _rows(result.stdout)
    assert rows["broker_url"]["value"] == "amqp://mq:***@mq:5672/%2F"
    assert (rows["worker_threads"]["env"], rows["worker_threads"]["value"]) == ("EINVOICE_WORKER_THREADS", "2")
    assert rows["worker_threads"]["source"] == "environment"
    for name in ("workers_in_process", "fault_pause", "shared_dir"):
        assert rows[name]["env"] == f"EINVOICE_{name.upper()}"
        assert rows[name]["description"]
    assert rows["workers_in_process"]["source"] == "default"


def test_config_says_a_value_from_the_env_file_is_given_not_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``.env`` is read as the environment is; it said ``default`` for what ``.env`` set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EINVOICE_MAX_RETRIES", raising=False)
    (tmp_path / ".env").write_text("EINVOICE_MAX_RETRIES=3\n", encoding="utf-8")
    rows = _rows(runner.invoke(app, ["config", "--json"]).stdout)
    assert (rows["max_retries"]["value"], rows["max_retries"]["source"]) == ("3", "environment")
