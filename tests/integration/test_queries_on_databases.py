"""The metrics tests of ``tests/unit/services/test_queries.py`` (there on the store's in-memory
twin), run on SQLite and on PostgreSQL by the parametrised ``uow_factory`` of ``conftest.py``: on
the databases the stage latencies are paired in SQL (a window over the newest transitions)."""

from __future__ import annotations

from tests.unit.services.test_queries import (
    _registered,
    test_a_stage_latency_spans_the_whole_stay_in_the_state,
    test_metrics,
    test_stage_latencies_come_from_the_newest_transitions,
)

__all__ = [
    "_registered",
    "test_a_stage_latency_spans_the_whole_stay_in_the_state",
    "test_metrics",
    "test_stage_latencies_come_from_the_newest_transitions",
]
