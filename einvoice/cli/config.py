"""``einvoice config``: the settings in effect, where each comes from, secrets masked.

Operators use it to check what a process will do before starting it ("which database? which
broker? where are the artefacts?") without reading environment variables by hand.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

_URL_FIELDS = frozenset({"database_url", "broker_url", "erp_url"})


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host/...`` (``einvoice.settings.mask_url``)."""
    from einvoice.settings import mask_url

    return mask_url(url)


def _shown(name: str, value: Any) -> Any:
    """A setting as ``einvoice config`` shows it: a URL with its password masked, any other secret
    as ``***``."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return mask_url(secret) if name in _URL_FIELDS else "***"
    if isinstance(value, str) and name in _URL_FIELDS:
        return mask_url(value)
    return value


def effective_settings() -> list[dict[str, Any]]:
    """One entry per setting: name, environment variable, value (masked), source, description.

    The source is ``environment`` for a value given in the environment or ``.env``, ``derived``
    for one computed from others (the database under the data directory), else ``default``."""
    from einvoice.settings import Settings

    settings = Settings()
    derived = {
        "database_url": settings.effective_database_url,
        "signing_key_file": str(settings.effective_signing_key_file),
        "erp_outbox_dir": str(settings.effective_erp_outbox_dir),
    }
    rows = []
    for name, field in Settings.model_fields.items():
        env = f"EINVOICE_{name.upper()}"
        value: Any = getattr(settings, name)
        source = "environment" if name in settings.model_fields_set else "default"
        if value is None and name in derived:
            value, source = derived[name], "derived"
        if name == "broker_url" and value is None:
            value = "in-process queue"
        value = _shown(name, value)
        rows.append(
            {
                "name": name,
                "env": env,
                "value": str(value) if value is not None else None,
                "source": source,
                "description": field.description or "",
            }
        )
    return rows


def config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the settings in effect (EINVOICE_* environment variables and .env), secrets masked."""
    from einvoice.errors import ConfigurationError
    from einvoice.settings import Settings

    rows = effective_settings()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        from einvoice.cli.tables import Column, print_table

        print_table(
            [Column("setting", identifier=True), Column("value"), Column("source"), Column("meaning")],
            [[row["env"], row["value"] or "-", row["source"], row["description"]] for row in rows],
        )
    try:
        Settings().check_production()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def register(app: typer.Typer) -> None:
    app.command("config")(config)
