"""``einvoice bench post``, small, on the embedded default: it builds and pushes entries to its
loopback ERP, then runs the pipeline with posting by pull through a served engine while its ERP
posting job pulls and acknowledges, and says what every document became and what it cost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from einvoice.cli import app


def test_every_document_is_posted_by_pull_and_the_cpu_per_document_posted_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EINVOICE_MODE", raising=False)
    arguments = ["bench", "post", "--count", "20", "--threads", "2", "--rate", "10", "--duration", "1", "--poll", "0.2"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    pushed = r"push to a loopback ERP, 2 senders: \d+ entries/s \(20 entries, each applied once\)"
    assert re.search(pushed, result.stdout)
    # the ten submitted and the twenty of the warm-up, each posted once the ERP acknowledged it
    assert "30 of 30 posted" in result.stdout
    assert "pipeline to posted by pull (embedded, the queue in the server's process)" in result.stdout
    assert "documents by state: posted 30" in result.stdout
    # one second of submissions is too short for a steady state, but each third has its latency
    steady = r"steady state \(from 5 s to the last submission\): no rate \(submissions too short\), receipt to "
    steady += r"posted p50 [\d.]+ s in the first third of the submissions, [\d.]+ s in the last"
    assert re.search(steady, result.stdout), result.stdout
    # the posting job pulls a page, acknowledges it, and waits 0.2 s when the page was not full
    runs = re.search(r"a page per request, (\d+) requests, 0.2 s between runs", result.stdout)
    assert runs is not None, result.stdout
    assert int(runs.group(1)) >= 2
    cpu = re.search(r"CPU per document posted .*: (.*); total ([\d.]+) ms", result.stdout)
    assert cpu is not None, result.stdout
    assert {part.split()[0] for part in cpu.group(1).split(", ")} >= {"api", "bench", "postgres", "rabbitmq"}
    assert float(cpu.group(2)) > 0
