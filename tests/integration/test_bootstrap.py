"""``bootstrap.build(settings)`` wires the validator, the ERP connector and the receipt signer, and
is where every database engine made from settings comes from."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from einvoice import bootstrap
from einvoice.errors import ConfigurationError
from einvoice.settings import Settings

PACKAGE = Path(bootstrap.__file__).resolve().parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url="sqlite://", broker_url=None, workers_in_process=0)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[bootstrap.Runtime]:
    runtime = bootstrap.build(settings, migrate=True)
    yield runtime
    runtime.stop()


def test_build_wires_the_validator_and_the_connectors(runtime: bootstrap.Runtime) -> None:
    from einvoice.validation.pool import ValidationPool

    assert isinstance(runtime.validation_pool, ValidationPool)  # the validator's subprocesses
    assert runtime.pipeline.parser is not None
    assert runtime.pipeline.poster is None  # no ERP connector yet: documents rest at approved
    assert runtime.pipeline.ports.validator is runtime.pipeline.validator


def test_the_api_signs_with_the_runtimes_signer(runtime: bootstrap.Runtime, settings: Settings) -> None:
    from einvoice.api import create_app

    app = create_app(runtime)
    assert app.state.signer is runtime.signer
    assert settings.effective_signing_key_file.is_file()  # embedded: generated on first use


def test_a_worker_runtime_has_no_signer_and_needs_no_key(tmp_path: Path) -> None:
    settings = Settings(
        mode="production",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        broker_url="redis://127.0.0.1:1/0",
    )
    with pytest.raises(ConfigurationError, match="EINVOICE_SIGNING_KEY_FILE"):
        bootstrap.build(settings)
    runtime = bootstrap.build(settings, signs_receipts=False, migrate=True)
    try:
        with pytest.raises(ConfigurationError, match="without a receipt signer"):
            runtime.signer  # noqa: B018
        assert not list(tmp_path.glob("*.pem"))
    finally:
        runtime.stop()


def test_the_fault_drill_pause_comes_from_settings(runtime: bootstrap.Runtime, settings: Settings) -> None:
    assert runtime.pipeline.runner().pause is None
    runtime.pipeline.settings = settings.model_copy(update={"fault_pause": "validate=0"})
    assert runtime.pipeline.runner().pause is not None


def test_database_engines_are_made_in_bootstrap_only() -> None:
    """``store.make_engine`` is called by ``bootstrap.database_engine`` (and inside ``store``, for a
    URL handed to ``store.migrate``), nowhere else: the CLI, the benchmarks and alembic's command
    line ask bootstrap."""
    callers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("make_engine", "create_engine"):
                    callers.append(relative)
    assert sorted(set(callers)) == ["bootstrap.py", "store/__init__.py", "store/engine.py"]


def test_the_embedded_default_database_directory_is_created(tmp_path: Path) -> None:
    engine = bootstrap.database_engine(Settings(data_dir=tmp_path / "new" / "var", database_url=None))
    try:
        assert (tmp_path / "new" / "var").is_dir()
        assert engine.url.database == str((tmp_path / "new" / "var" / "einvoice.db").resolve())
    finally:
        engine.dispose()
