"""``einvoice serve`` and ``einvoice worker``: their settings come from ``Settings``, and the worker's
main loop is the CLI's, with the actors left in ``einvoice.worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from einvoice import bootstrap
from einvoice.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory; the process-wide things the commands set up (signal handlers, the
    log configuration, the collector's frozen generation) left as they were."""
    import gc
    import signal

    from einvoice import logs

    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE", "EINVOICE_WORKER_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_worker_help_names_its_options_and_their_variables() -> None:
    result = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Run the pipeline worker (validation, matching, posting) until SIGTERM or Ctrl-C" in text
    assert "--threads" in text
    assert "EINVOICE_WORKER_THREADS" in text
    assert "--processes" in text


def test_the_worker_module_keeps_only_the_actors() -> None:
    from einvoice import worker

    assert not hasattr(worker, "main")
    assert not hasattr(worker, "default_validator")
    assert callable(worker.declare_actors)


class Started(Exception):
    """Stops the worker command once it has started its runtime."""


@pytest.mark.parametrize(("environment", "arguments", "threads"), [("3", [], 3), ("3", ["--threads", "2"], 2)])
def test_worker_takes_its_threads_from_settings_unless_given(
    monkeypatch: pytest.MonkeyPatch, environment: str, arguments: list[str], threads: int
) -> None:
    monkeypatch.setenv("EINVOICE_WORKER_THREADS", environment)
    seen: dict[str, Any] = {}

    def start_worker(self: bootstrap.Runtime, count: int) -> None:
        seen["threads"], seen["signs"] = count, self.signs_receipts
        raise Started

    monkeypatch.setattr(bootstrap.Runtime, "start_worker", start_worker)
    result = runner.invoke(app, ["worker", *arguments])
    assert isinstance(result.exception, Started), result.output
    assert seen == {"threads": threads, "signs": False}


def test_worker_refuses_incomplete_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_MODE", "production")
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "EINVOICE_DATABASE_URL" in result.output
    assert "EINVOICE_SIGNING_KEY_FILE" not in result.output  # a worker signs nothing


@pytest.mark.parametrize(
    ("environment", "arguments", "shown"), [("0", [], "0"), ("0", ["--workers-in-process", "2"], "2")]
)
def test_serve_takes_worker_threads_from_settings_unless_given(
    monkeypatch: pytest.MonkeyPatch, environment: str, arguments: list[str], shown: str
) -> None:
    """``serve`` wrote its option's default (1) into the environment over EINVOICE_WORKERS_IN_PROCESS;
    now the option, when given, overrides the setting, and the app is built with those settings."""
    import uvicorn

    monkeypatch.setenv("EINVOICE_WORKERS_IN_PROCESS", environment)
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    result = runner.invoke(app, ["serve", "--port", "8765", *arguments])
    assert result.exit_code == 0, result.output
    assert f"worker threads:    {shown} in this process" in result.output
    assert served["port"] == 8765
    assert served["app"].title == "einvoice"
