from pathlib import Path

import pytest

from einvoice.errors import ConfigurationError
from einvoice.settings import Settings


def test_embedded_default_needs_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    settings = Settings()
    settings.check_production()  # embedded: nothing to refuse
    assert settings.mode == "embedded"
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'einvoice.db').resolve()}"
    assert settings.broker_url is None
    assert settings.effective_signing_key_file == tmp_path / "receipt-key.pem"
    assert settings.max_document_bytes == 10 * 1024 * 1024


def test_environment_prefix_sets_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("EINVOICE_MAX_DOCUMENT_BYTES", "1234")
    settings = Settings()
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"
    assert settings.max_document_bytes == 1234


def test_production_refuses_to_start_without_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_MODE", "production")
    with pytest.raises(ConfigurationError) as excinfo:
        Settings().check_production()
    message = str(excinfo.value)
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_SIGNING_KEY_FILE"):
        assert name in message


def test_production_with_everything_given_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EINVOICE_MODE", "production")
    monkeypatch.setenv("EINVOICE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("EINVOICE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    monkeypatch.setenv("EINVOICE_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    Settings().check_production()


def test_workers_need_no_signing_key_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_MODE", "production")
    monkeypatch.setenv("EINVOICE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("EINVOICE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    monkeypatch.delenv("EINVOICE_SIGNING_KEY_FILE", raising=False)
    Settings().check_production(signs_receipts=False)
    with pytest.raises(ConfigurationError, match="EINVOICE_SIGNING_KEY_FILE"):
        Settings().check_production()


def test_the_default_data_directory_does_not_depend_on_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from einvoice import settings as settings_module

    monkeypatch.delenv("EINVOICE_DATA_DIR", raising=False)
    monkeypatch.delenv("EINVOICE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == settings_module.PROJECT_ROOT / "var"
    assert settings.effective_database_url == f"sqlite:///{settings_module.PROJECT_ROOT / 'var' / 'einvoice.db'}"


def test_outside_a_checkout_the_data_directory_is_the_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from einvoice import settings as settings_module

    monkeypatch.delenv("EINVOICE_DATA_DIR", raising=False)
    monkeypatch.setattr(settings_module, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Settings().data_dir == tmp_path / "data" / "einvoice"


def test_process_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings that were read from ``os.environ`` by hand (worker, bootstrap, bench) are fields now,
    under the same variable names."""
    monkeypatch.setenv("EINVOICE_WORKER_THREADS", "3")
    monkeypatch.setenv("EINVOICE_WORKERS_IN_PROCESS", "0")
    monkeypatch.setenv("EINVOICE_FAULT_PAUSE", "validate=30")
    monkeypatch.setenv("EINVOICE_SHARED_DIR", str(tmp_path))
    settings = Settings()
    assert (settings.worker_threads, settings.workers_in_process) == (3, 0)
    assert settings.fault_pause == "validate=30"
    assert settings.shared_dir == tmp_path


def test_process_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EINVOICE_WORKER_THREADS", "EINVOICE_WORKERS_IN_PROCESS", "EINVOICE_FAULT_PAUSE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.worker_threads, settings.workers_in_process, settings.fault_pause) == (1, 1, None)


@pytest.mark.parametrize(("name", "value"), [("EINVOICE_WORKER_THREADS", "0"), ("EINVOICE_WORKERS_IN_PROCESS", "-1")])
def test_impossible_thread_counts_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Read by hand, a bad value fell back to the default without a word; now the process refuses it."""
    from pydantic import ValidationError

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("EINVOICE_").lower()):
        Settings()


def test_secrets_are_secret_strings_that_no_repr_or_log_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    monkeypatch.setenv("EINVOICE_DATABASE_URL", "postgresql+psycopg://app:s3cret@db/einvoice")
    monkeypatch.setenv("EINVOICE_BROKER_URL", "amqp://mq:hunter2@mq:5672/%2F")
    monkeypatch.setenv("EINVOICE_ERP_TOKEN", "tok-123")
    settings = Settings()
    for name in ("database_url", "broker_url", "erp_token"):
        assert isinstance(getattr(settings, name), SecretStr)
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    for secret in ("s3cret", "hunter2", "tok-123"):
        assert secret not in shown
    assert settings.effective_database_url == "postgresql+psycopg://app:s3cret@db/einvoice"
    assert settings.effective_broker_url == "amqp://mq:hunter2@mq:5672/%2F"


def test_a_wrong_broker_url_is_refused_without_showing_its_password() -> None:
    from einvoice import messaging

    with pytest.raises(ConfigurationError) as refused:
        messaging.make_broker(Settings(broker_url="kafka://user:hunter2@mq:9092"))
    assert "hunter2" not in str(refused.value)
    assert "kafka://user:***@mq:9092" in str(refused.value)


def test_no_module_reads_the_environment_but_settings() -> None:
    """Every setting goes through ``Settings``: no ``os.environ[...]``, ``os.environ.get`` or
    ``os.getenv`` anywhere else in the package (handing the environment on to a child process, as
    the pipeline benchmark does with ``dict(os.environ)``, is not reading a setting)."""
    import ast

    from einvoice import settings as settings_module

    package = Path(settings_module.__file__).resolve().parent
    reads = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                reads.append(f"{path.relative_to(package)}:{node.lineno}")
    allowed = {"benchmarks/pipeline.py"}  # dict(os.environ): the child server's environment
    assert [r for r in reads if r.split(":")[0] not in allowed] == []
