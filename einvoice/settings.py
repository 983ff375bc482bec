"""All configuration in one place: environment variables with the prefix ``EINVOICE_``.

The embedded default (SQLite file under the data directory, in-process queue, local signing key
generated on first use) needs no configuration at all. Outside embedded mode, secrets have no
working defaults: ``Settings.check_production()`` refuses to start without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from einvoice.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES_DIR = PROJECT_ROOT / "ubl_schemas"
APP_NAME = "einvoice"


def default_data_dir() -> Path:
    """Where the embedded mode keeps its data when ``EINVOICE_DATA_DIR`` is not set: ``var/`` of the
    project checkout einvoice runs from (``make run``, an editable install), else the platform's user
    data directory (``~/.local/share/einvoice`` on Linux). Never the current directory: the CLI run
    from another folder would open another, empty database."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "einvoice").is_dir():
        return PROJECT_ROOT / "var"
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


class Settings(BaseSettings):
    """Engine settings. Every field can be set as ``EINVOICE_<FIELD>`` in the environment or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="EINVOICE_", env_file=".env", extra="ignore")

    # --- mode and storage -------------------------------------------------------------------
    mode: Literal["embedded", "production"] = Field(
        "embedded", description="embedded: SQLite + in-process queue; production: external database and broker"
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded mode keeps its database, keys and outputs; default: the checkout's var/, "
        "else the user data directory",
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/einvoice.db")
    broker_url: str | None = Field(None, description="amqp://… (RabbitMQ) or redis://…; default: in-process queue")

    # --- validation artefacts ------------------------------------------------------------------
    rules_dir: Path = Field(DEFAULT_RULES_DIR, description="Where official artefacts are installed")
    rules_source: str | None = Field(
        None, description="Directory or archive to install artefacts from (before ../shared/rules and download)"
    )
    rule_overrides_file: Path | None = Field(None, description="JSON file with per-institution rule severity overrides")

    # --- intake limits -------------------------------------------------------------------------
    max_document_bytes: int = Field(10 * 1024 * 1024, description="Largest accepted document, in bytes")
    max_xml_depth: int = Field(256, description="Deepest accepted element nesting")

    # --- validation limits (documents from outside run in subprocesses) ------------------------
    validation_timeout_seconds: float = Field(
        60.0, gt=0, description="Wall-clock time one document's validation may take before it is rejected"
    )
    validation_memory_mb: int = Field(
        1024, gt=0, description="Memory one document's validation may add to its subprocess before it is rejected"
    )
    validation_processes: int | None = Field(
        None, ge=1, description="Validation subprocesses per engine process; default: one per worker thread"
    )
    validation_findings_per_rule: int = Field(
        100, ge=1, description="Findings a report keeps per rule; the rest are counted in one finding"
    )

    # --- receipts ------------------------------------------------------------------------------
    signing_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM) for receipts; embedded default: <data_dir>/receipt-key.pem"
    )

    # --- HTTP ----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000

    # --- pipeline --------------------------------------------------------------------------------
    stuck_after_seconds: int = Field(300, description="A document in a working state longer than this is re-sent")
    max_retries: int = Field(8, description="Retries of a transient failure before the document goes dead")

    # --- ERP connector ---------------------------------------------------------------------------
    erp_connector: Literal["folder", "http", "pull"] = "folder"
    erp_url: str | None = None
    erp_token: str | None = None
    erp_outbox_dir: Path | None = Field(None, description="Folder connector target; default <data_dir>/erp-outbox")

    # --- accountants' pages (/ui/) -------------------------------------------------------------
    ui_session_idle_minutes: int = Field(
        30, ge=1, description="A signed-in session ends after this many minutes without a request"
    )
    ui_session_max_hours: float = Field(10, gt=0, description="A session ends this long after sign-in, however busy")
    ui_lockout_attempts: int = Field(5, ge=1, description="Failed sign-ins in a row that lock a user out")
    ui_lockout_minutes: int = Field(15, ge=1, description="How long a locked-out user must wait")
    ui_secure_cookies: bool | None = Field(
        None,
        description="Mark the session cookie Secure; default: when the request came over https (behind a TLS "
        "proxy: run uvicorn with --proxy-headers, or set this to true)",
    )

    log_level: str = "INFO"
    log_json: bool = False

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'einvoice.db').resolve()}"

    @property
    def effective_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "receipt-key.pem"

    @property
    def effective_erp_outbox_dir(self) -> Path:
        return self.erp_outbox_dir or self.data_dir / "erp-outbox"

    def check_production(self, *, signs_receipts: bool = True) -> None:
        """Raise ConfigurationError when production mode lacks what it must be given explicitly.

        ``signs_receipts=False`` for processes that never sign (workers): they need no signing key.
        """
        if self.mode != "production":
            return
        missing = []
        if not self.database_url:
            missing.append("EINVOICE_DATABASE_URL")
        if not self.broker_url:
            missing.append("EINVOICE_BROKER_URL")
        if signs_receipts and not self.signing_key_file:
            missing.append("EINVOICE_SIGNING_KEY_FILE")
        if self.erp_connector == "http" and not self.erp_token:
            missing.append("EINVOICE_ERP_TOKEN")
        if missing:
            raise ConfigurationError("production mode needs " + ", ".join(missing))


def get_settings() -> Settings:
    """Read settings from the environment (a fresh object each call; callers keep what they need)."""
    return Settings()
