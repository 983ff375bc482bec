"""The ``einvoice`` command. Each command group lives in a module of its own; this one only assembles them.

Imports of heavy modules (saxonche, SQLAlchemy, FastAPI) happen inside the commands, so that
``einvoice --help`` is fast and a broken optional part does not break unrelated commands.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="einvoice",
    help="E-invoice processing engine: Peppol BIS Billing 3.0 / EN 16931 UBL validation, intake, matching, posting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# modules whose register(app) adds their commands
_COMMAND_MODULES = (
    "einvoice.cli.rules",
    "einvoice.cli.validate",
    "einvoice.cli.bench",
    "einvoice.cli.admin",
    "einvoice.cli.run",
    "einvoice.cli.config",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


def _version(value: bool) -> None:
    if value:
        from einvoice import __version__

        typer.echo(f"einvoice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """E-invoice processing engine: Peppol BIS Billing 3.0 / EN 16931 UBL validation, intake, matching, posting."""


_register()


def main() -> None:
    app()
