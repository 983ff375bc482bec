"""``einvoice bench``: measurements of the engine's own cost. ``bench validate`` times validation;
``bench pipeline`` (``benchmarks.pipeline``) the pipeline over HTTP; ``bench match``
(``benchmarks.match``) matching against a large register.
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
# saxonche runs slower for the first few dozen documents of a process (its heap grows): every
# process, the measuring one and each worker, validates this many before anything is timed.
WARM_UP_DOCUMENTS = 100
ROUNDS = 3  # each throughput figure is measured this many times; the median and the best are kept


def default_bench_path() -> Path | None:
    """The corpus's valid Peppol samples, when ../shared (or EINVOICE_SHARED_DIR) is present."""
    from einvoice.settings import get_settings

    billing = get_settings().shared_dir / "corpus" / "peppol-2026.5" / "billing"
    return billing if billing.is_dir() else None


def _peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


# --- worker side of the parallel run --------------------------------------------------------------

_worker_validator: Validator | None = None
_worker_options: dict[str, Any] = {}


def _warm_up(validator: Validator, docs: Sequence[bytes], rules: str, skip_xsd: bool) -> dict[str, int]:
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


def _worker_run(chunk: list[bytes]) -> tuple[int, float]:
    """Validate a chunk; return how many and the CPU seconds this process spent on them."""
    assert _worker_validator is not None
    started = time.process_time()
    for data in chunk:
        _worker_validator.validate(data, **_worker_options)
    return len(chunk), time.process_time() - started


def _worker_rss(_: int) -> float:
    return _peak_rss_mib(resource.RUSAGE_SELF)


def _parallel(docs: Sequence[bytes], jobs: int, repeat: int, rules: str, skip_xsd: bool) -> dict[str, Any]:
    """Throughput of ``jobs`` processes, each compiled and warmed up before the clock starts.

    Each round gives every worker as much work as the one-process run (``repeat`` passes over the
    documents), in chunks of a few documents taken from a shared queue, so a worker slowed down by
    other work on the machine does not hold the others up at the end.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(jobs + 1)
    work = [d for _ in range(repeat * jobs) for d in docs]
    n_chunks = max(jobs * 16, 1)
    chunks = [work[i::n_chunks] for i in range(n_chunks) if work[i::n_chunks]]
    rounds: list[dict[str, float]] = []
    with context.Pool(jobs, initializer=_worker_init, initargs=(barrier, rules, skip_xsd, list(docs))) as pool:
        barrier.wait(timeout=600)  # every worker has compiled its stylesheets and warmed up
        for _ in range(ROUNDS):
            load = os.getloadavg()[0]
            started = time.perf_counter()
            results = pool.map(_worker_run, chunks, chunksize=1)
            elapsed = time.perf_counter() - started
            done = sum(n for n, _ in results)
            cpu = sum(c for _, c in results)
            rounds.append(
                {
                    "documents": done,
                    "seconds": elapsed,
                    "docs_per_s": done / elapsed,
                    "cpu_ms_per_doc": 1000 * cpu / done,
                    # share of the workers' cores they got: below 1 when other work took CPU time
                    "cpu_utilisation": cpu / (jobs * elapsed),
                    "load_average_1m": round(load, 2),
                }
            )
        worker_rss = max(pool.map(_worker_rss, range(jobs), chunksize=1))
    median = sorted(rounds, key=lambda r: r["docs_per_s"])[len(rounds) // 2]
    return {
        "jobs": jobs,
        "documents": median["documents"],
        "seconds": median["seconds"],
        "docs_per_s": median["docs_per_s"],
        "docs_per_s_best": max(r["docs_per_s"] for r in rounds),
        "cpu_ms_per_doc": median["cpu_ms_per_doc"],
        "cpu_utilisation": median["cpu_utilisation"],
        "rounds": rounds,
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
    rounds: list[dict[str, float]] = []
    for _ in range(ROUNDS):
        load = os.getloadavg()[0]
        cpu_started = time.process_time()
        started = time.perf_counter()
        for _ in range(repeat):
            for data in docs:
                t0 = time.perf_counter()
                report = validator.validate(data, rules=rules, skip_xsd=skip_xsd)
                wall.append(time.perf_counter() - t0)
                for layer in LAYERS:
                    per_layer[layer].append(report.timings.get(layer, 0.0))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        done = repeat * len(docs)
        rounds.append(
            {
                "documents": done,
                "seconds": elapsed,
                "docs_per_s": done / elapsed,
                "cpu_ms_per_doc": 1000 * cpu / done,
                "cpu_utilisation": cpu / elapsed,
                "load_average_1m": round(load, 2),
            }
        )
    median_round = sorted(rounds, key=lambda r: r["docs_per_s"])[len(rounds) // 2]
    n = len(wall)
    single = {
        "documents": n,
        "seconds": sum(r["seconds"] for r in rounds),
        "docs_per_s": median_round["docs_per_s"],
        "docs_per_s_best": max(r["docs_per_s"] for r in rounds),
        "rounds": rounds,
        "ms_per_doc": {
            "total_mean": 1000 * statistics.fmean(wall),
            "total_median": 1000 * statistics.median(wall),
            # CPU time of this process (median round): less sensitive than wall time to other work.
            "total_cpu": statistics.median(r["cpu_ms_per_doc"] for r in rounds),
            "total_cpu_best": min(r["cpu_ms_per_doc"] for r in rounds),
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
        parallel["speedup_best"] = parallel["docs_per_s_best"] / single["docs_per_s_best"]
        result["parallel"] = parallel
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def reference_loop(docs: Sequence[bytes], *, repeat: int, rules: str) -> dict[str, Any]:
    """The reference the validation target names: a plain saxonche loop over the *official*
    stylesheets of the rule set (compiled once; per document a parse, then each stylesheet with
    the global context item set; no XSD, no findings read), CPU ms per document in ``ROUNDS``
    rounds after the same warm-up as the engine's."""
    from saxonche import PySaxonProcessor

    from einvoice.parsers import safe_xml
    from einvoice.validation import artefacts, rulesets

    ruleset = rulesets.select(None, rules="peppol-bis3" if rules == "auto" else rules)
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    executables = [
        compiler.compile_stylesheet(stylesheet_file=str(artefacts.path(s.set_id, s.relpath)))
        for s in ruleset.stylesheets
    ]
    safe_xml.harden_saxon(processor)
    texts = [d.decode("utf-8") for d in docs]

    def one(text: str) -> None:
        node = processor.parse_xml(xml_text=text)
        for executable in executables:
            executable.set_global_context_item(xdm_item=node)
            executable.apply_templates_returning_string(xdm_value=node)

    for i in range(max(WARM_UP_DOCUMENTS, len(texts))):
        one(texts[i % len(texts)])
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeat):
            for text in texts:
                one(text)
        rounds.append(1000 * (time.process_time() - started) / (repeat * len(texts)))
    return {
        "rules": ruleset.name,
        "stylesheets": [f"{s.set_id}/{s.relpath}" for s in ruleset.stylesheets],
        "cpu_ms_per_doc": statistics.median(rounds),
        "cpu_ms_per_doc_best": min(rounds),
        "rounds": rounds,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


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
    layer_table.add_row(
        "total (CPU time, median / best round)",
        f"{single['ms_per_doc']['total_cpu']:.2f} / {single['ms_per_doc']['total_cpu_best']:.2f}",
    )
    console.print(layer_table)

    throughput = Table(
        title=f"Throughput (median and best of {len(single['rounds'])} rounds, after compile and warm-up)"
    )
    throughput.add_column("processes", justify="right")
    throughput.add_column("documents / s", justify="right")
    throughput.add_column("best", justify="right")
    throughput.add_column("speedup (median / best)", justify="right")
    throughput.add_column("CPU ms / document", justify="right")
    throughput.add_column("cores' time got", justify="right")
    throughput.add_column("load average (1 min) per round", justify="right")
    throughput.add_row(
        "1",
        f"{single['docs_per_s']:.1f}",
        f"{single['docs_per_s_best']:.1f}",
        "1.00",
        f"{single['ms_per_doc']['total_cpu']:.2f}",
        f"{median_of(single['rounds'], 'cpu_utilisation'):.0%}",
        " ".join(f"{r['load_average_1m']:.2f}" for r in single["rounds"]),
    )
    if "parallel" in result:
        par = result["parallel"]
        throughput.add_row(
            str(par["jobs"]),
            f"{par['docs_per_s']:.1f}",
            f"{par['docs_per_s_best']:.1f}",
            f"{par['speedup']:.2f} / {par['speedup_best']:.2f}",
            f"{par['cpu_ms_per_doc']:.2f}",
            f"{par['cpu_utilisation']:.0%}",
            " ".join(f"{r['load_average_1m']:.2f}" for r in par["rounds"]),
        )
    console.print(throughput)
    memory = f"peak RSS: {result['peak_rss_mib']:.0f} MiB (this process)"
    if "parallel" in result:
        memory += f", {result['parallel']['worker_peak_rss_mib']:.0f} MiB (largest worker)"
    console.print(memory)
    if "reference" in result:
        ref = result["reference"]
        console.print(
            f"reference, a plain saxonche loop over the official {' + '.join(ref['stylesheets'])}: "
            f"{ref['cpu_ms_per_doc']:.2f} ms CPU per document (median round; best {ref['cpu_ms_per_doc_best']:.2f}); "
            f"the engine: {result['single']['ms_per_doc']['total_cpu']:.2f}"
        )
    console.print(
        f"verdicts: {result['verdicts']}; machine: {result['machine']}; load average: {result['load_average']}"
    )


@bench_app.command("validate")
def bench_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders (default: the corpus's valid Peppol samples under ../shared)."),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-r", min=1, help="Passes over the documents.")] = 5,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="Processes for the parallel run (default: all cores).")
    ] = None,
    rules: Annotated[RulesChoice, typer.Option("--rules")] = RulesChoice.auto,
    skip_xsd: Annotated[bool, typer.Option("--skip-xsd")] = False,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference",
            help="Also time a plain saxonche loop over the official stylesheets (the targets' reference), "
            "in the same run.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
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
    if reference:
        result["reference"] = reference_loop([f.read_bytes() for f in files], repeat=repeat, rules=rules.value)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _print_tables(result)


def register(app: typer.Typer) -> None:
    from einvoice.benchmarks.match import bench_match
    from einvoice.benchmarks.pipeline import bench_pipeline
    from einvoice.benchmarks.post import bench_post
    from einvoice.benchmarks.review import bench_review

    bench_app.command("pipeline")(bench_pipeline)
    bench_app.command("post")(bench_post)
    bench_app.command("review")(bench_review)
    bench_app.command("match")(bench_match)
    app.add_typer(bench_app, name="bench")
