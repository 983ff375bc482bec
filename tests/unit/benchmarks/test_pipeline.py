"""The pipeline benchmark's arithmetic: quantiles, and figures from document histories."""

from __future__ import annotations

from decimal import Decimal

from einvoice.benchmarks.pipeline import InvoiceLine, Submission, _quantile, _summarise


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _quantile(values, 0.5) == 50.0
    assert _quantile(values, 0.99) == 99.0
    assert _quantile([3.0], 0.99) == 3.0
    assert _quantile([], 0.5) is None


def test_line_amounts_round_half_up() -> None:
    assert InvoiceLine("x", Decimal("3"), Decimal("0.335")).net == Decimal("1.01")


def _detail(received: str, start: str, done: str | None, status: str) -> dict[str, object]:
    history = [
        {"from_status": None, "to_status": "received", "at": received},
        {"from_status": "received", "to_status": "validating", "at": start},
    ]
    if done:
        history.append({"from_status": "validating", "to_status": status, "at": done})
    return {"received_at": received, "status": status, "history": history}


def test_summary_from_histories() -> None:
    sent = [
        Submission(i, 0.0, sent_at=float(i), latency=0.01 * (i + 1), status=202, document_id=str(i)) for i in range(3)
    ]
    sent.append(Submission(3, 0.0, sent_at=3.0, status=503, error="HTTP 503"))
    details = {
        "0": _detail("2026-11-22T08:00:00.000000Z", "2026-11-22T08:00:00.500000Z", "2026-11-22T08:00:01Z", "validated"),
        "1": _detail("2026-11-22T08:00:01Z", "2026-11-22T08:00:01.200000Z", "2026-11-22T08:00:02Z", "rejected"),
        "2": _detail("2026-11-22T08:00:02Z", "2026-11-22T08:00:03Z", None, "validating"),
    }
    result = _summarise(50.0, 4, sent, 3.0, details, [0.5, 1.5])
    assert (result.accepted, result.failed) == (3, 1)
    assert result.errors == {"HTTP 503": 1}
    assert (result.validated, result.rejected, result.unfinished) == (1, 1, 1)
    assert result.pipeline_seconds == 2.0
    assert result.docs_per_second == 1.0
    assert result.queue_wait_max == 1.0
    assert result.latency_p99 == 0.03
    assert result.queue_lag_max_metrics == 1.5
    assert "documents/s" in result.to_text()
