"""``einvoice bench``: measurements of the engine's own cost. ``bench validate`` times validation.

A sub-typer, so that other benchmarks (``bench pipeline``) can join it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from einvoice.cli.validate import EXIT_ERROR, InputError, RulesChoice, collect_files, default_jobs

if TYPE_CHECKING:
    from einvoice.validation.engine import Validator

bench_app = typer.Typer(name="bench", help="Measure the engine's cost.", no_args_is_help=True)

LAYERS = ("parse", "xsd", "parse_saxon", "en16931", "peppol")
WARM_UP_DOCUMENTS = 40


def default_bench_path() -> Path | None:
    """The corpus's valid Peppol samples, when ../shared (or EINVOICE_SHARED_DIR) is present."""
    from einvoice.settings import PROJECT_ROOT

    shared = Path(os.environ.get("EINVOICE_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
    billing = shared / "corpus" / "peppol-2026.5" / "billing"
    return billing if billing.is_dir() else None


def _peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


# --- worker side of the parallel run --------------------------------------------------------------

_worker_validator: Validator | None = None
_worker_options: dict[str, Any] = {}


def _warm_up(validator: Validator, docs: Sequence[bytes], rules: str, skip_xsd: bool) -> dict[str, int]:
    # saxonche runs slower for the first few dozen documents (its heap grows): time after that.
    verdicts: dict[str, int] = {}
    for i in range(max(WARM_UP_DOCUMENTS, len(docs))):
        report = validator.validate(docs[i % len(docs)], rules=rules, skip_xsd=skip_xsd)
        if i < len(docs):
            verdicts[report.verdict] = verdicts.get(report.verdict, 0) + 1
    return verdicts


def _worker_init(barrier: Any, rules: str, skip_xsd: bool, docs: list[bytes]) -> None:
    global _worker_validator
    from einvoice.validation.engine import Validator

    _worker_validator = Validator()
    _worker_options.update(rules=rules, skip_xsd=skip_xsd)
    _warm_up(_worker_validator, docs, rules, skip_xsd)
    barrier.wait()


def _worker_run(chunk: list[bytes]) -> int:
    assert _worker_validator is not None
    for data in chunk:
        _worker_validator.validate(data, **_worker_options)
    return len(chunk)


def _worker_rss(_: int) -> float:
    return _peak_rss_mib(resource.RUSAGE_SELF)


def _parallel(docs: Sequence[bytes], jobs: int, repeat: int, rules: str, skip_xsd: bool) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(jobs + 1)
    work = [d for _ in range(repeat) for d in docs]
    n_chunks = jobs * 8
    chunks = [work[i::n_chunks] for i in range(n_chunks) if work[i::n_chunks]]
    with context.Pool(jobs, initializer=_worker_init, initargs=(barrier, rules, skip_xsd, list(docs))) as pool:
        barrier.wait(timeout=600)
        started = time.perf_counter()
        done = sum(pool.map(_worker_run, chunks, chunksize=1))
        elapsed = time.perf_counter() - started
        worker_rss = max(pool.map(_worker_rss, range(jobs), chunksize=1))
    return {
        "jobs": jobs,
        "documents": done,
        "seconds": elapsed,
        "docs_per_s": done / elapsed,
        "worker_peak_rss_mib": worker_rss,
    }


def run_bench(files: Sequence[Path], *, repeat: int, jobs: int, rules: str, skip_xsd: bool) -> dict[str, Any]:
    """Measure compile time, per-layer cost on one core, and throughput with ``jobs`` processes."""
    from einvoice.validation.engine import Validator

    docs = [f.read_bytes() for f in files]
    validator = Validator()
    started = time.perf_counter()
    rule_sets = ("peppol-bis3", "en16931") if rules == "auto" else (rules,)
    compile_times = validator.prepare(rule_sets)
    compile_total = time.perf_counter() - started
    by_rule_set = {name: sum(validator.prepare((name,)).values()) for name in rule_sets}  # cached: no recompile

    verdicts = _warm_up(validator, docs, rules, skip_xsd)
    xsd_load = sum(validator.xsd.load_seconds.values())

    per_layer: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    wall: list[float] = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    for _ in range(repeat):
        for data in docs:
            t0 = time.perf_counter()
            report = validator.validate(data, rules=rules, skip_xsd=skip_xsd)
            wall.append(time.perf_counter() - t0)
            for layer in LAYERS:
                per_layer[layer].append(report.timings.get(layer, 0.0))
    single_elapsed = time.perf_counter() - started
    cpu_elapsed = time.process_time() - cpu_started
    n = len(wall)
    single = {
        "documents": n,
        "seconds": single_elapsed,
        "docs_per_s": n / single_elapsed,
        "ms_per_doc": {
            "total_mean": 1000 * statistics.fmean(wall),
            "total_median": 1000 * statistics.median(wall),
            # CPU time of this process: less sensitive than wall time to other work on the machine.
            "total_cpu": 1000 * cpu_elapsed / n,
            **{layer: 1000 * statistics.fmean(values) for layer, values in per_layer.items()},
        },
    }
    result: dict[str, Any] = {
        "files": len(docs),
        "repeat": repeat,
        "rules": rules,
        "skip_xsd": skip_xsd,
        "verdicts": verdicts,
        "compile_seconds": {"total": compile_total, **compile_times, "xsd_load": xsd_load},
        "compile_seconds_by_rule_set": by_rule_set,
        "single": single,
        "peak_rss_mib": _peak_rss_mib(resource.RUSAGE_SELF),
        "machine": {"nproc": default_jobs(), "cpu": _cpu_model()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if jobs > 1:
        parallel = _parallel(docs, jobs, repeat, rules, skip_xsd)
        parallel["speedup"] = parallel["docs_per_s"] / single["docs_per_s"]
        result["parallel"] = parallel
    return result


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    compile_table = Table(title="Compile (once per process)")
    compile_table.add_column("artefact")
    compile_table.add_column("seconds", justify="right")
    for name, seconds in result["compile_seconds"].items():
        if name != "total":
            compile_table.add_row(name, f"{seconds:.3f}")
    for name, seconds in result["compile_seconds_by_rule_set"].items():
        compile_table.add_row(f"rule set {name}", f"{seconds:.3f}")
    compile_table.add_row("[bold]all stylesheets[/bold]", f"[bold]{result['compile_seconds']['total']:.3f}[/bold]")
    console.print(compile_table)

    single = result["single"]
    layer_table = Table(
        title=f"One core: {single['documents']} validations ({result['files']} files x {result['repeat']})"
    )
    layer_table.add_column("layer")
    layer_table.add_column("ms / document", justify="right")
    for layer in LAYERS:
        layer_table.add_row(layer, f"{single['ms_per_doc'][layer]:.2f}")
    layer_table.add_row("[bold]total (mean)[/bold]", f"[bold]{single['ms_per_doc']['total_mean']:.2f}[/bold]")
    layer_table.add_row("total (median)", f"{single['ms_per_doc']['total_median']:.2f}")
    layer_table.add_row("total (CPU time)", f"{single['ms_per_doc']['total_cpu']:.2f}")
    console.print(layer_table)

    throughput = Table(title="Throughput")
    throughput.add_column("processes", justify="right")
    throughput.add_column("documents / s", justify="right")
    throughput.add_column("speedup", justify="right")
    throughput.add_row("1", f"{single['docs_per_s']:.1f}", "1.00")
    if "parallel" in result:
        par = result["parallel"]
        throughput.add_row(str(par["jobs"]), f"{par['docs_per_s']:.1f}", f"{par['speedup']:.2f}")
    console.print(throughput)
    memory = f"peak RSS: {result['peak_rss_mib']:.0f} MiB (this process)"
    if "parallel" in result:
        memory += f", {result['parallel']['worker_peak_rss_mib']:.0f} MiB (largest worker)"
    console.print(memory)
    console.print(
        f"verdicts: {result['verdicts']}; machine: {result['machine']}; load average: {result['load_average']}"
    )


@bench_app.command("validate")
def bench_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders (default: the corpus's valid Peppol samples under ../shared)"),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-r", min=1, help="Passes over the documents")] = 5,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Processes for the parallel run (default: all cores)")
    ] = None,
    rules: Annotated[RulesChoice, typer.Option("--rules")] = RulesChoice.auto,
    skip_xsd: Annotated[bool, typer.Option("--skip-xsd")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Time validation: compile, ms per document per layer, documents/s on one core and in parallel, peak memory."""
    if not paths:
        default = default_bench_path()
        if default is None:
            typer.echo("einvoice bench validate: no PATH given and ../shared/corpus not found", err=True)
            raise typer.Exit(EXIT_ERROR)
        paths = [default]
    try:
        files = collect_files(paths)
    except InputError as exc:
        typer.echo(f"einvoice bench validate: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if not files:
        typer.echo("einvoice bench validate: no XML files found", err=True)
        raise typer.Exit(EXIT_ERROR)
    result = run_bench(files, repeat=repeat, jobs=jobs or default_jobs(), rules=rules.value, skip_xsd=skip_xsd)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _print_tables(result)


def register(app: typer.Typer) -> None:
    from einvoice.benchmarks.pipeline import bench_pipeline

    bench_app.command("pipeline")(bench_pipeline)
    app.add_typer(bench_app, name="bench")
