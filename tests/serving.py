"""``einvoice serve`` as a subprocess for the tests that need a real server (browsers, drills)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(
    env: Mapping[str, str],
    *,
    args: Sequence[str] = (),
    until: str = "/healthz",
    timeout: float = 60,
    cwd: Path | None = None,
    output: IO[bytes] | int = subprocess.DEVNULL,
    died: Callable[[], str] = lambda: "einvoice serve exited",
) -> Iterator[str]:
    """Start ``einvoice serve`` on a free port with ``env`` (and ``args``), wait until ``until``
    answers 200, yield its base URL; stop it (SIGTERM, then kill) when the block ends. ``died``
    says what to report when the server exits before it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "einvoice", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=dict(env),
        stdout=output,
        stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, died()
            try:
                if httpx.get(base + until, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server did not answer {until} within {timeout:g} s"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
