"""The pipeline bench's CPU probe counts the subprocesses of the processes it is given (where the
engine validates documents), so its CPU per document is the whole cost."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from einvoice.benchmarks import cpu


def test_cpu_probe_counts_the_subprocesses_of_the_processes_named() -> None:
    if not cpu.available():
        pytest.skip("no /proc on this system")
    probe = cpu.CpuProbe({"api": [os.getpid()]})
    before = probe()
    burn = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass\ninput()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while probe()["validation"] - before["validation"] < 0.15:
            assert time.monotonic() < deadline, "the subprocess's CPU time was not counted"
            time.sleep(0.05)
    finally:
        child.communicate(b"\n", timeout=10)
