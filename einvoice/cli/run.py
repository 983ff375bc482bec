"""``einvoice serve`` (the HTTP API) and ``einvoice worker`` (the pipeline's worker process)."""

from __future__ import annotations

import os
import signal
from typing import Annotated

import typer

from einvoice.errors import ConfigurationError

WORKERS_IN_PROCESS_ENV = "EINVOICE_WORKERS_IN_PROCESS"


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default: EINVOICE_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: EINVOICE_PORT, else 8000).")] = None,
    workers_in_process: Annotated[
        int,
        typer.Option(
            "--workers-in-process",
            min=0,
            help="Embedded mode: worker threads inside the server (0: none, run 'einvoice worker' instead).",
        ),
    ] = 1,
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
    # The runtime is built in the server's lifespan (bootstrap reads the same environment).
    os.environ[WORKERS_IN_PROCESS_ENV] = str(workers_in_process)

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - only for display
    url = f"http://{shown_host}:{port}"
    typer.echo(f"einvoice {settings.mode} mode: serving on {url}")
    if settings.mode == "embedded":
        typer.echo(f"  API documentation: {url}/docs")
        typer.echo(f"  web pages:         {url}/")
        typer.echo(f"  health:            {url}/healthz, {url}/readyz, {url}/metrics")
        typer.echo(f"  data directory:    {settings.data_dir.resolve()}")
        typer.echo(f"  worker threads:    {workers_in_process} in this process")

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handler
    # that was there before it started: make that one a clean exit, so a stop is not a failure.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    from einvoice import logs

    # One log format for the engine and uvicorn: uvicorn's loggers propagate to the root handler.
    logs.configure(settings.log_level, json_lines=settings.log_json)
    uvicorn.run(
        "einvoice.api:create_app",
        factory=True,
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
        int | None, typer.Option(min=1, help="Worker threads per process (default: EINVOICE_WORKER_THREADS, else 1).")
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
    """Run the pipeline worker (validation, matching, posting) until SIGTERM or Ctrl-C."""
    if processes > 1:
        raise typer.Exit(_run_processes(processes, threads))
    from einvoice.worker import main as worker_main

    worker_main(threads)


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
