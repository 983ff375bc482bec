"""``einvoice validate``: validate files and folders, report as JSON, text or HTML.

Exit codes: 0 every document valid; 1 at least one invalid or unsupported; 2 usage or I/O error, or
a validation layer could not run for some document (verdict ``error``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from einvoice.errors import InputError  # defined there; importable from here too

if TYPE_CHECKING:
    from einvoice.validation.report import ValidationReport

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_ERROR = 2
MIN_DOCUMENTS_PER_WORKER = 50


class OutputFormat(StrEnum):
    json = "json"
    text = "text"
    html = "html"


class RulesChoice(StrEnum):
    auto = "auto"
    en16931 = "en16931"
    peppol_bis3 = "peppol-bis3"


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """Expand folders to the ``*.xml`` files below them (any case, sorted); keep files as given.

    Raises ``InputError`` for a path that does not exist or cannot be read.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".xml" and p.is_file())
            except OSError as exc:
                raise InputError(f"cannot read folder {path}: {exc.strerror or exc}") from None
            files.extend(found)
        elif path.is_file():
            if not os.access(path, os.R_OK):
                raise InputError(f"cannot read {path}: permission denied")
            files.append(path)
        else:
            raise InputError(f"no such file or folder: {path}")
    return files


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- running in this process or in a pool ---------------------------------------------------------


def _validate_file(args: tuple[str, str, bool, bool]) -> ValidationReport:
    # Runs in a worker process (or in-process for --jobs 1); each process compiles once.
    from einvoice.validation import default_validator

    path, rules, skip_xsd, svrl = args
    return default_validator().validate(Path(path), rules=rules, skip_xsd=skip_xsd, svrl=svrl)


def run_batch(
    files: Sequence[Path],
    *,
    rules: str,
    skip_xsd: bool,
    svrl: bool,
    jobs: int,
    on_done: Callable[[], None] | None = None,
) -> list[ValidationReport]:
    """Validate ``files`` in order; with ``jobs > 1`` across up to that many worker processes.

    At most one worker per ``MIN_DOCUMENTS_PER_WORKER`` documents: fewer run in this process.

    Raises ``OSError`` when a file cannot be read.
    """
    tasks = [(str(f), rules, skip_xsd, svrl) for f in files]
    results: list[ValidationReport] = []
    # Every worker compiles the stylesheets (about a second) before its first document, so a
    # worker only pays off with enough documents to share; small batches run in this process.
    workers = min(jobs, math.ceil(len(tasks) / MIN_DOCUMENTS_PER_WORKER))
    if workers <= 1:
        for task in tasks:
            results.append(_validate_file(task))
            if on_done:
                on_done()
        return results
    import multiprocessing

    # spawn: a forked child must never inherit a running saxonche (GraalVM) isolate.
    context = multiprocessing.get_context("spawn")
    chunksize = max(1, min(16, len(tasks) // (workers * 4)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for report in pool.map(_validate_file, tasks, chunksize=chunksize):
            results.append(report)
            if on_done:
                on_done()
    return results


def _progress(total: int, enabled: bool) -> Generator[Callable[[], None] | None, None, None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("validating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("validate", total=total)
        yield lambda: progress.advance(task)


def exit_code(reports: Sequence[ValidationReport]) -> int:
    if any(r.verdict == "error" for r in reports):
        return EXIT_ERROR
    if all(r.valid for r in reports):
        return EXIT_VALID
    return EXIT_INVALID


def summary_line(reports: Sequence[ValidationReport]) -> str:
    """``3 documents: 2 valid, 1 invalid`` (one document: ``invoice.xml: invalid``)."""
    if len(reports) == 1:
        return f"{reports[0].file or 'the document'}: {reports[0].verdict}"
    by_verdict: dict[str, int] = {}
    for report in reports:
        by_verdict[report.verdict] = by_verdict.get(report.verdict, 0) + 1
    return f"{len(reports)} documents: " + ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items()))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"einvoice validate: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="Files, or folders to search for *.xml files.")],
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = (OutputFormat.text),
    skip_xsd: Annotated[bool, typer.Option("--skip-xsd", help="Do not run the UBL 2.1 XSD layer.")] = False,
    rules: Annotated[
        RulesChoice, typer.Option("--rules", help="Invoice rule set: by cbc:CustomizationID (auto) or forced.")
    ] = RulesChoice.auto,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores).")
    ] = None,
    svrl: Annotated[
        bool, typer.Option("--svrl", help="Include each stylesheet's raw SVRL (JSON reports only).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file and print a one-line summary.")
    ] = None,
) -> None:
    """Validate UBL invoices and credit notes (UBL 2.1 XSD, EN 16931 and Peppol BIS 3 rules), and Peppol
    Orders, Despatch Advices, Invoice Responses and Message Level Responses (XSD and their rules).

    Exit code 0 when every document is valid, 1 when any is invalid or unsupported, 2 for usage or
    I/O errors and when a validation layer could not run.
    """
    from einvoice.validation.report import reports_to_html, reports_to_json, reports_to_text

    try:
        files = collect_files(paths)
    except InputError as exc:
        raise _fail(str(exc)) from None
    if not files:
        raise _fail("no XML files found in " + ", ".join(str(p) for p in paths))
    if svrl and output_format is not OutputFormat.json:
        typer.echo(
            "einvoice validate: --svrl adds the stylesheets' raw SVRL to JSON reports only (--format json); "
            f"not included in the {output_format.value} report",
            err=True,
        )
        svrl = False
    n_jobs = jobs or default_jobs()
    show_progress = len(files) > 1 and sys.stderr.isatty()
    try:
        progress = _progress(len(files), show_progress)
        on_done = next(progress)
        try:
            reports = run_batch(files, rules=rules.value, skip_xsd=skip_xsd, svrl=svrl, jobs=n_jobs, on_done=on_done)
        finally:
            progress.close()
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename or ''}: {exc.strerror or exc}".replace(" : ", ": ")) from None

    if output_format is OutputFormat.json:
        text = reports_to_json(reports, include_svrl=svrl) + "\n"
    elif output_format is OutputFormat.html:
        text = reports_to_html(reports)
    else:
        text = reports_to_text(reports)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror or exc}") from None
        typer.echo(f"{summary_line(reports)}; report written to {output}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    raise typer.Exit(exit_code(reports))


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
