"""All configuration in one place: environment variables with the prefix ``EINVOICE_``.

The embedded default (SQLite file under the data directory, in-process queue, local signing key
generated on first use) needs no configuration at all. Outside embedded mode, secrets have no
working defaults: ``Settings.check_production()`` refuses to start without them.

Every setting the package reads is a field here; nothing else reads ``os.environ``. Secrets (the
database and broker URLs, which hold passwords, the ERP token and signing secret) are ``SecretStr``: they show as
``**********`` in a repr, a log line or a traceback, and only ``effective_database_url``,
``effective_broker_url`` and ``erp_token.get_secret_value()`` give them out.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL (a secret: it holds the password); default sqlite:///<data_dir>/einvoice.db"
    )
    broker_url: SecretStr | None = Field(
        None, description="amqp://… (RabbitMQ) or redis://… (a secret: it holds the password); default: in-process"
    )

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
    workers_in_process: int = Field(
        1,
        ge=0,
        description="Embedded mode: worker threads inside 'einvoice serve' (0: none, an 'einvoice worker' "
        "consumes instead); 'serve --workers-in-process' sets it",
    )
    # Validation holds the GIL, so a second thread in a process mostly adds switching: measured on 2
    # cores at 100 documents/s, 1 thread per process 10.2 ms of worker CPU per document, 2 threads 11.6.
    worker_threads: int = Field(
        1, ge=1, description="Threads per 'einvoice worker' process ('worker --threads' overrides it)"
    )
    statistics_upkeep_seconds: float = Field(
        10.0,
        ge=0,
        description="PostgreSQL with autovacuum off: every this many seconds, ANALYZE the engine's tables that "
        "changed beyond autovacuum's analyze threshold (each at most once in that time), so that plans follow "
        "the tables' growth (0: never)",
    )
    fault_pause: str | None = Field(
        None,
        description="Fault drills only: STAGE=SECONDS makes a worker sleep that long after claiming a document "
        "for that stage (e.g. validate=30), so that a test can kill it mid-stage",
    )

    # --- matching (einvoice.matching; the tolerances are the commitments') -----------------------
    match_duplicate_window_days: int = Field(
        7,
        ge=0,
        description="SUSPECTED_DUPLICATE: same supplier and BT-112, another number, issue dates this many days apart",
    )
    match_anomaly_deviations: Decimal = Field(
        Decimal(3), gt=0, description="AMOUNT_ANOMALY: BT-112 more than this many standard deviations from the mean"
    )
    match_anomaly_invoices: int = Field(
        30, ge=2, description="AMOUNT_ANOMALY: of the supplier's last this many invoices with the institution"
    )
    match_anomaly_minimum: int = Field(
        5,
        ge=2,
        description="AMOUNT_ANOMALY: only when the supplier has at least this many invoices with the institution",
    )
    match_description_similarity: float = Field(
        90.0, ge=0, le=100, description="Lines match by description above this similarity (0-100), same unit code"
    )

    # --- ERP connector ---------------------------------------------------------------------------
    erp_connector: Literal["folder", "http", "pull"] = Field(
        "folder",
        description="How journal entries reach the ERP: folder (file batches), http (pushed to EINVOICE_ERP_URL), "
        "pull (the ERP's jobs take them from GET /v1/erp/entries)",
    )
    erp_url: str | None = Field(None, description="ERP endpoint of the http connector")
    erp_token: SecretStr | None = Field(None, description="Bearer token of the http connector (a secret)")
    erp_signing_secret: SecretStr | None = Field(
        None,
        description="http connector: the secret of the X-Einvoice-Signature header (HMAC-SHA256 of the body; "
        "a secret shared with the ERP)",
    )
    erp_timeout_seconds: float = Field(
        10.0, gt=0, description="http connector: how long the ERP may take to answer a push before it is retried"
    )
    erp_outbox_dir: Path | None = Field(None, description="Folder connector target; default <data_dir>/erp-outbox")
    erp_file_format: Literal["jsonl", "csv"] = Field(
        "jsonl", description="Folder connector: journal entries as JSON lines or CSV batches"
    )
    posting_enabled: bool = Field(
        False,
        description="Post approved documents to the ERP (EINVOICE_ERP_CONNECTOR); off: documents rest at approved",
    )

    # --- suppliers' webhooks (PUT /v1/webhook) ----------------------------------------------------
    webhook_max_attempts: int = Field(
        8, ge=1, description="Attempts to deliver a response to a supplier's webhook before it is dead-lettered"
    )
    webhook_backoff_seconds: float = Field(
        30.0,
        gt=0,
        description="Wait before a webhook delivery's second attempt; doubled for each further one (with "
        "jitter, at most an hour)",
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="How long a webhook receiver may take to answer")
    webhook_allow_http_localhost: bool = Field(
        False, description="Allow http:// webhook URLs to 127.0.0.1, ::1 or localhost (tests, local receivers)"
    )

    # --- accountants' pages (/ui/) -------------------------------------------------------------
    ui_session_idle_minutes: int = Field(
        30, ge=1, description="A signed-in session ends after this many minutes without a request"
    )
    ui_session_max_hours: float = Field(10, gt=0, description="A session ends this long after sign-in, however busy")
    ui_lockout_attempts: int = Field(5, ge=1, description="Failed sign-ins in a row that lock a user out")
    ui_queue_counts_seconds: float = Field(
        15,
        ge=0,
        description="The queue's counts by reason and by institution are counted again after this many seconds "
        "(0: on every page); the rows and the total are always read afresh",
    )
    ui_lockout_minutes: int = Field(15, ge=1, description="How long a locked-out user must wait")
    ui_secure_cookies: bool | None = Field(
        None,
        description="Mark the session cookie Secure; default: when the request came over https (behind a TLS "
        "proxy: run uvicorn with --proxy-headers, or set this to true)",
    )
    ui_trusted_header: str | None = Field(
        None,
        description="Sign-in by an identity provider in front of the engine: the request header (e.g. "
        "X-Forwarded-User, set by oauth2-proxy) that names the signed-in user, honoured only from "
        "EINVOICE_UI_TRUSTED_PROXIES; the user must exist here and be active. Unset: passwords only",
    )
    ui_trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDRs (e.g. 127.0.0.1,10.0.0.0/8) whose requests may carry "
        "EINVOICE_UI_TRUSTED_HEADER; from anywhere else the header is ignored",
    )

    @field_validator("ui_trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"not an address or CIDR: {part!r}") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of EINVOICE_UI_TRUSTED_PROXIES (none: the trusted header is never honoured)."""
        parts = filter(None, (p.strip() for p in self.ui_trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)

    log_level: str = "INFO"
    log_json: bool = False

    # --- development -------------------------------------------------------------------------------
    shared_dir: Path = Field(
        PROJECT_ROOT.parent / "shared",
        description="The official artefacts and sample corpus beside the checkout; 'einvoice bench validate' "
        "without a path measures its valid Peppol samples",
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL, password included (never print it: ``mask_url``)."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'einvoice.db').resolve()}"

    @property
    def effective_broker_url(self) -> str | None:
        """The broker URL, password included, or None for the in-process queue."""
        if self.broker_url is None:
            return None
        return self.broker_url.get_secret_value() or None

    @property
    def uses_default_database(self) -> bool:
        """Whether the database is the embedded default file under ``data_dir``."""
        return self.database_url is None or not self.database_url.get_secret_value()

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
        if self.uses_default_database:
            missing.append("EINVOICE_DATABASE_URL")
        if not self.effective_broker_url:
            missing.append("EINVOICE_BROKER_URL")
        if signs_receipts and not self.signing_key_file:
            missing.append("EINVOICE_SIGNING_KEY_FILE")
        if self.erp_connector == "http":
            secrets = {"EINVOICE_ERP_TOKEN": self.erp_token, "EINVOICE_ERP_SIGNING_SECRET": self.erp_signing_secret}
            for name, secret in secrets.items():
                if not (secret and secret.get_secret_value()):
                    missing.append(name)
        if missing:
            raise ConfigurationError("production mode needs " + ", ".join(missing))


def mask_url(url: str) -> str:
    """``url`` with its password hidden: ``scheme://user:***@host/...``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def get_settings() -> Settings:
    """Read settings from the environment (a fresh object each call; callers keep what they need)."""
    return Settings()
