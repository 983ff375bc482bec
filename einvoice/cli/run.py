"""``einvoice serve`` (the HTTP API) and ``einvoice worker`` (the pipeline's worker process).

Both build their runtime with ``einvoice.bootstrap.build`` from the settings; the worker's actors
are in ``einvoice.worker``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from einvoice.errors import ConfigurationError

if TYPE_CHECKING:
    from einvoice.settings import Settings

log = logging.getLogger("einvoice.worker")


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default: EINVOICE_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: EINVOICE_PORT, else 8000).")] = None,
    workers_in_process: Annotated[
        int | None,
        typer.Option(
            "--workers-in-process",
            min=0,
            help="Embedded mode: worker threads inside the server (0: none, run 'einvoice worker' instead; "
            "default: EINVOICE_WORKERS_IN_PROCESS, else 1).",
        ),
    ] = None,
) -> None:
    """Start the HTTP API. In embedded mode the pipeline's worker runs inside the server too."""
    import uvicorn

    from einvoice.settings import get_settings

    settings = get_settings()
    try:
        settings.check_production()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    host = host or settings.host
    port = port if port is not None else settings.port
    if workers_in_process is not None:
        settings = settings.model_copy(update={"workers_in_process": workers_in_process})

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - only for display
    url = f"http://{shown_host}:{port}"
    typer.echo(f"einvoice {settings.mode} mode: serving on {url}")
    if settings.mode == "embedded":
        typer.echo(f"  API documentation: {url}/docs")
        typer.echo(f"  web pages:         {url}/")
        typer.echo(f"  health:            {url}/healthz, {url}/readyz, {url}/metrics")
        typer.echo(f"  data directory:    {settings.data_dir.resolve()}")
        typer.echo(f"  worker threads:    {settings.workers_in_process} in this process")

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handler
    # that was there before it started: make that one a clean exit, so a stop is not a failure.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    from einvoice import logs

    # One log format for the engine and uvicorn: uvicorn's loggers propagate to the root handler.
    logs.configure(settings.log_level, json_lines=settings.log_json)
    from einvoice.api import create_app

    # The runtime is built from these settings in the server's lifespan.
    uvicorn.run(
        create_app(settings=settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        # Longer than the idle timeout of the usual load balancers (60 s): the server must not
        # close a kept-alive connection the balancer is about to reuse.
        timeout_keep_alive=75,
    )


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def worker(
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker threads per process (default: EINVOICE_WORKER_THREADS, else 1). Two threads sharing one "
            "validation subprocess (EINVOICE_VALIDATION_PROCESSES=1) keep it busy while the other thread works "
            "with the database: on two cores, two such processes took the least CPU per document "
            "(README, 'Posting to the ERP').",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes; each validates in subprocesses of its own, one per worker thread "
            "(EINVOICE_VALIDATION_PROCESSES), so threads and processes both use more cores.",
        ),
    ] = 1,
) -> None:
    """Run the pipeline worker (validation, matching, posting) until SIGTERM or Ctrl-C: it takes
    messages from the queue, and runs an outbox relay and a sweeper too. On SIGTERM or Ctrl-C it
    finishes the messages in hand; unfinished ones go back to the broker."""
    if processes > 1:
        raise typer.Exit(_run_processes(processes, threads))
    from einvoice.settings import get_settings

    settings = get_settings()
    try:
        settings.check_production(signs_receipts=False)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    run_worker(settings, threads)


def run_worker(settings: Settings, threads: int | None = None) -> None:
    """Consume the queue with ``threads`` threads (default ``settings.worker_threads``), run the
    outbox relay and the sweeper, and stop on SIGTERM/SIGINT after the messages in hand are
    finished (unfinished ones go back to the broker)."""
    import gc

    from einvoice import logs
    from einvoice.bootstrap import build

    logs.configure(settings.log_level, json_lines=settings.log_json)
    logging.getLogger("pika").setLevel(logging.WARNING)  # pika logs every connection close at INFO
    runtime = build(settings, signs_receipts=False)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the messages in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # What was built so far lives as long as the process: kept out of the collector's full
    # passes, which would otherwise walk all of it again and again while documents flow.
    gc.collect()
    gc.freeze()
    threads = threads or settings.worker_threads
    try:
        runtime.start_worker(threads)
        log.info("einvoice worker %d: %d threads on %s", os.getpid(), threads, type(runtime.broker).__name__)
        while not stop.wait(1.0):
            pass
    finally:
        runtime.stop()


def _run_processes(count: int, threads: int | None) -> int:
    """Start ``count`` single-process workers, pass SIGTERM/SIGINT on to them, wait for all;
    return the first non-zero exit status (0 when all stopped cleanly)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "einvoice", "worker"] + (["--threads", str(threads)] if threads else [])
    children = [subprocess.Popen(command) for _ in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    statuses = [child.wait() for child in children]
    return next((status for status in statuses if status), 0)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
