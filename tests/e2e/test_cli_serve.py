"""``einvoice serve`` as an operator runs it: starts, answers, says where things are, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving import free_port

pytestmark = pytest.mark.slow


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_")}
    env |= {"EINVOICE_DATA_DIR": str(tmp_path), "EINVOICE_SHARED_DIR": os.environ.get("EINVOICE_SHARED_DIR", "")}
    if not env["EINVOICE_SHARED_DIR"]:
        del env["EINVOICE_SHARED_DIR"]
    process = subprocess.Popen(
        [sys.executable, "-m", "einvoice", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /healthz within 60 s"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        assert (tmp_path / "receipt-key.pem").exists()
        assert (tmp_path / "einvoice.db").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read().decode() if process.stdout else ""
        assert f"http://127.0.0.1:{port}" in output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert "embedded" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
