"""The ``einvoice`` command. Each command group lives in a module of its own; this one only assembles them.

Imports of heavy modules (saxonche, SQLAlchemy, FastAPI) happen inside the commands, so that
``einvoice --help`` is fast and a broken optional part does not break unrelated commands.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.core


def _hide_flag_types() -> None:
    """Typer's help shows ``<bool>`` after every flag (``--json <bool>``), as if it took a value:
    show nothing there, as for ``--help`` in click's own help."""
    original = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        if self.is_flag and not self.count:
            return None
        return original(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    name="einvoice",
    help="E-invoice processing engine: Peppol BIS Billing 3.0 / EN 16931 UBL validation, intake, matching, posting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# modules whose register(app) adds their commands
_COMMAND_MODULES = (
    "einvoice.cli.rules",
    "einvoice.cli.validate",
    "einvoice.cli.bench",
    "einvoice.cli.admin",
    "einvoice.cli.commitments",
    "einvoice.cli.posting",
    "einvoice.cli.users",
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
