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
