"""Prometheus text exposition (format 0.0.4), rendered by hand: the engine needs a few gauges and
histograms, not a client library.

What the API process measures itself (submission latency) lives in ``ApiMetrics``; what the
database knows (documents by state, queue lag, stage latencies) comes from the services'
``MetricsSnapshot`` at scrape time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class Histogram:
    """A cumulative histogram, safe to observe from several threads."""

    buckets: Sequence[float] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        with self._lock:
            self.count += 1
            self.total += value
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self.counts[i] += 1

    def samples(self) -> tuple[list[tuple[float, int]], float, int]:
        with self._lock:
            return list(zip(self.buckets, self.counts, strict=True)), self.total, self.count


class Family:
    """One metric family: HELP, TYPE and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.lines: list[str] = []

    def sample(self, value: float, labels: Mapping[str, str] | None = None, *, suffix: str = "") -> Family:
        self.lines.append(f"{self.name}{suffix}{_labels(labels or {})} {_number(value)}")
        return self

    def histogram(self, histogram: Histogram, labels: Mapping[str, str] | None = None) -> Family:
        base = dict(labels or {})
        buckets, total, count = histogram.samples()
        for bound, n in buckets:
            self.sample(n, base | {"le": _number(bound)}, suffix="_bucket")
        self.sample(count, base | {"le": "+Inf"}, suffix="_bucket")
        self.sample(total, base, suffix="_sum")
        self.sample(count, base, suffix="_count")
        return self

    def render(self) -> str:
        head = [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join(head + self.lines)


def render(families: Iterable[Family]) -> str:
    """Return the exposition text of ``families`` (ends with a newline, as the format requires)."""
    return "\n".join(f.render() for f in families) + "\n"


class ApiMetrics:
    """What one API process measures: submission latency by outcome."""

    def __init__(self) -> None:
        self.submissions: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def observe_submission(self, outcome: str, seconds: float) -> None:
        with self._lock:
            histogram = self.submissions.setdefault(outcome, Histogram())
        histogram.observe(seconds)

    def families(self) -> list[Family]:
        family = Family(
            "einvoice_submission_seconds",
            "histogram",
            "Time from request to answer of POST /v1/documents in this API process, by outcome",
        )
        with self._lock:
            items = sorted(self.submissions.items())
        for outcome, histogram in items:
            family.histogram(histogram, {"outcome": outcome})
        return [family]


def _get(snapshot: Any, name: str, default: Any = None) -> Any:
    if isinstance(snapshot, Mapping):
        return snapshot.get(name, default)
    return getattr(snapshot, name, default)


def snapshot_families(snapshot: Any) -> list[Family]:
    """Return the families for a services ``MetricsSnapshot``: documents by state, queue lag, stage latencies."""
    families: list[Family] = []
    by_status = _get(snapshot, "documents_by_status") or _get(snapshot, "by_status") or {}
    docs = Family("einvoice_documents", "gauge", "Documents by state")
    for status, count in sorted(by_status.items()):
        docs.sample(count, {"status": str(status)})
    families.append(docs)

    lag = _get(snapshot, "queue_lag_seconds")
    if lag is not None:
        families.append(
            Family(
                "einvoice_queue_lag_seconds",
                "gauge",
                "Age of the oldest document waiting for a pipeline step (0 when none waits)",
            ).sample(float(lag))
        )
    pending = _get(snapshot, "outbox_pending")
    if pending is not None:
        families.append(
            Family("einvoice_outbox_pending", "gauge", "Outbox messages not yet handed to the broker").sample(
                float(pending)
            )
        )
    outbox_lag = _get(snapshot, "outbox_lag_seconds")
    if outbox_lag is not None:
        families.append(
            Family(
                "einvoice_outbox_lag_seconds", "gauge", "Age of the oldest outbox message not yet handed to the broker"
            ).sample(float(outbox_lag))
        )
    stages = _get(snapshot, "stage_latency_seconds") or _get(snapshot, "stage_latencies") or {}
    if stages:
        family = Family(
            "einvoice_stage_latency_seconds",
            "gauge",
            "Recent latency of each pipeline stage (time in the state before it), by quantile",
        )
        for stage, values in sorted(stages.items()):
            if isinstance(values, Mapping):
                for quantile, value in sorted(values.items()):
                    if value is not None:
                        family.sample(float(value), {"stage": str(stage), "quantile": str(quantile)})
            elif values is not None:
                family.sample(float(values), {"stage": str(stage)})
        families.append(family)
    return families
