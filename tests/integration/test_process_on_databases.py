"""The stage tests of ``tests/unit/services/test_process.py`` (there on the store's in-memory
twin), run on SQLite and on PostgreSQL by the parametrised ``uow_factory`` of ``conftest.py`` (and
its ``supplier`` and ``contract``): on PostgreSQL a stage's claim and its finish are single
statements (data-modifying CTEs), so the guards, leases, transitions and findings are proven on both
write paths."""

from __future__ import annotations

from tests.unit.services.test_process import StageTests


class TestStagesOnDatabases(StageTests):
    """On SQLite and PostgreSQL."""
