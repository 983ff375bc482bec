"""``einvoice rules install|list|verify``: the official validation artefacts.

Exit codes: 0 done; 2 an artefact is missing, corrupt or cannot be installed (one line on stderr,
naming the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

EXIT_ARTEFACTS = 2

rules_app = typer.Typer(
    help="Official validation artefacts (UBL 2.1 XSD, EN 16931, Peppol BIS 3).", no_args_is_help=True
)

RulesDirOption = Annotated[
    Path | None, typer.Option("--rules-dir", help="Where the artefacts are installed (default: EINVOICE_RULES_DIR).")
]


def _settings(rules_dir: Path | None) -> object:
    from einvoice.settings import Settings

    settings = Settings()
    if rules_dir is not None:
        settings = settings.model_copy(update={"rules_dir": rules_dir})
    return settings


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(EXIT_ARTEFACTS)


@rules_app.command("install")
def install_command(
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Directory (<DIR>/<set id>/…) or zip archive to install from; default: EINVOICE_RULES_SOURCE, "
            "then ../shared/rules, then the official downloads.",
        ),
    ] = None,
    rules_dir: RulesDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Reinstall even when installed and verified.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Install every artefact set of the manifest, checking each file's sha256; atomic per run."""
    from einvoice.errors import ArtefactError
    from einvoice.settings import Settings
    from einvoice.validation import artefacts

    settings = _settings(rules_dir)
    assert isinstance(settings, Settings)

    def report(message: str) -> None:
        if not quiet:
            typer.echo(message)

    try:
        result = artefacts.install(source, settings, force=force, report=report)
    except ArtefactError as exc:
        raise _fail(exc) from None
    if result.already:
        report(f"already installed and verified in {settings.rules_dir}")
    else:
        report(f"installed {', '.join(result.installed)} into {settings.rules_dir} from {result.source}")


@rules_app.command("list")
def list_command(
    rules_dir: RulesDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each artefact set: version, dates in force, installed, verified."""
    from einvoice.errors import ArtefactError
    from einvoice.settings import Settings
    from einvoice.validation import artefacts

    settings = _settings(rules_dir)
    assert isinstance(settings, Settings)
    try:
        states = artefacts.status(settings)
    except ArtefactError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "id": s.artefact_set.id,
            "version": s.artefact_set.version,
            "in_force_from": s.artefact_set.in_force_from.isoformat(),
            "in_force_until": s.artefact_set.in_force_until.isoformat() if s.artefact_set.in_force_until else None,
            "files": len(s.artefact_set.files),
            "installed": s.installed,
            "verified": s.verified,
            "problem": s.problem,
        }
        for s in states
    ]
    if as_json:
        typer.echo(json.dumps({"rules_dir": str(settings.rules_dir), "sets": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"artefacts in {settings.rules_dir}")
    for column in ("set", "version", "in force from", "until", "files", "installed", "verified"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["version"]),
            str(row["in_force_from"]),
            str(row["in_force_until"] or "-"),
            str(row["files"]),
            "yes" if row["installed"] else "no",
            {True: "yes", False: "NO", None: "-"}[row["verified"]],  # type: ignore[index]
        )
    Console(width=120).print(table)
    for row in rows:
        if row["problem"]:
            typer.echo(f"{row['id']}: {row['problem']}")


@rules_app.command("verify")
def verify_command(
    set_id: Annotated[str | None, typer.Argument(help="One set id (default: all).")] = None,
    rules_dir: RulesDirOption = None,
) -> None:
    """Check the sha256 of every installed file against the manifest."""
    from einvoice.errors import ArtefactError
    from einvoice.settings import Settings
    from einvoice.validation import artefacts

    settings = _settings(rules_dir)
    assert isinstance(settings, Settings)
    try:
        verified = artefacts.verify(set_id, settings)
    except ArtefactError as exc:
        raise _fail(exc) from None
    typer.echo(f"verified {', '.join(verified)} in {settings.rules_dir}")


@rules_app.command("manifest", hidden=True)
def manifest_command(
    source: Annotated[Path, typer.Option("--from", help="Folder holding <set id>/… as the manifest lists.")],
    check: Annotated[bool, typer.Option("--check", help="Only report whether the manifest is up to date.")] = False,
) -> None:
    """Maintainers: recompute the file lists (sha256, size) of ubl_schemas/manifest.json from a folder."""
    from einvoice.errors import ArtefactError
    from einvoice.validation import artefacts

    try:
        raw = artefacts.build_manifest(source)
        current = json.loads(artefacts.MANIFEST_PATH.read_text(encoding="utf-8"))
    except (ArtefactError, OSError, ValueError) as exc:
        raise _fail(exc) from None
    if raw == current:
        typer.echo(f"{artefacts.MANIFEST_PATH} is up to date")
        return
    if check:
        typer.echo(f"error: {artefacts.MANIFEST_PATH} differs from {source}", err=True)
        raise typer.Exit(EXIT_ARTEFACTS)
    artefacts.write_manifest(raw)
    typer.echo(f"wrote {artefacts.MANIFEST_PATH}")


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
