"""Validation subprocesses: the same reports as in-process, limits on time and memory, a
subprocess that dies or is stopped replaced, and a report of the layers that finished."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from einvoice.settings import Settings
from einvoice.validation.engine import Validator
from einvoice.validation.pool import ValidationPool
from tests.integration.pipeline_support import BASE_EXAMPLE, corpus_invoice

pytestmark = pytest.mark.slow


def with_empty_lines(count: int) -> bytes:
    raw = BASE_EXAMPLE.read_bytes()
    return raw.replace(b"<cac:InvoiceLine>", b"<cac:InvoiceLine/>" * count + b"<cac:InvoiceLine>", 1)


@pytest.fixture(scope="module")
def pool() -> Iterator[ValidationPool]:
    with ValidationPool(Settings(), processes=1, timeout_seconds=3, memory_mb=1024) as pool:
        pool.start()
        yield pool


def test_reports_equal_those_of_the_engine_in_process(pool: ValidationPool) -> None:
    in_process = Validator(Settings())
    for raw in (corpus_invoice("POOL-1"), corpus_invoice("POOL-2", payable="1.00"), with_empty_lines(30)):
        expected = in_process.validate(raw, institution="0002:FR23342")
        report = pool.validate(raw, institution="0002:FR23342")
        assert (report.verdict, report.findings) == (expected.verdict, expected.findings)
        assert report.rules == expected.rules == "peppol-bis3"


def test_the_time_limit_stops_a_document_and_the_next_one_is_validated(pool: ValidationPool) -> None:
    replaced, pids = pool.replaced, pool.pids()
    started = time.monotonic()
    report = pool.validate(with_empty_lines(4000))
    assert time.monotonic() - started < 3 + 2
    assert report.verdict == "invalid"
    *found, limit = report.findings
    assert limit.rule == "VALIDATION-LIMIT"
    assert limit.is_fatal
    assert "longer than the time limit of 3 s" in limit.message
    assert {f.layer.value for f in found} == {"xsd"}  # the XSD layer had finished, the stylesheets had not
    assert any(f.rule == "FINDINGS-CAPPED" for f in found)
    assert pool.replaced == replaced + 1
    assert pool.pids() != pids
    assert pool.validate(corpus_invoice("AFTER-1")).verdict == "valid"


def test_the_memory_limit_stops_a_document() -> None:
    with ValidationPool(Settings(), processes=1, timeout_seconds=60, memory_mb=40) as pool:
        assert pool.validate(corpus_invoice("MEM-0")).verdict == "valid"
        report = pool.validate(with_empty_lines(4000))
        assert report.verdict == "invalid"
        assert report.findings[-1].rule == "VALIDATION-LIMIT"
        assert "memory limit of 40 MB" in report.findings[-1].message
        assert pool.replaced == 1
        assert pool.validate(corpus_invoice("MEM-1")).verdict == "valid"


def test_a_subprocess_that_dies_during_a_document_is_replaced(pool: ValidationPool) -> None:
    (pid,) = pool.pids()
    pool.validate(corpus_invoice("WARM"))  # ready, so the kill lands mid-document
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    report = pool.validate(with_empty_lines(4000))
    assert report.findings[-1].rule == "VALIDATION-LIMIT"
    assert "subprocess ended" in report.findings[-1].message
    assert pool.validate(corpus_invoice("AFTER-2")).verdict == "valid"


def test_threads_share_the_subprocesses_and_a_closed_pool_says_error() -> None:
    pool = ValidationPool(Settings(), processes=2)
    verdicts: list[str] = []
    threads = [
        threading.Thread(target=lambda n=n: verdicts.append(pool.validate(corpus_invoice(f"T-{n}")).verdict))
        for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert verdicts == ["valid"] * 6
    assert len(pool.pids()) == 2
    pool.close()
    report = pool.validate(corpus_invoice("CLOSED"))
    assert report.verdict == "error"
    assert report.findings[0].rule == "ENGINE"
    with pytest.raises(ValueError, match="rules must be one of"):
        pool.validate(b"<x/>", rules="nonsense")
