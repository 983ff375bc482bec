"""The stage tests of ``tests/unit/services/test_process.py``, run against a fresh PostgreSQL
database: there a stage's claim and its finish are single statements (data-modifying CTEs), so
the guards, leases, transitions and findings are proven on that path too."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from einvoice.store import UnitOfWork, make_engine, uow_factory_for
from tests.integration.test_store_postgres import fresh_postgres_database
from tests.unit.services.conftest import institution, supplier, supplier_and_key  # noqa: F401 - fixtures
from tests.unit.services.test_process import *  # noqa: F403 - the same test functions
from tests.unit.services.test_process import _registered  # noqa: F401 - autouse, not exported by *

pytestmark = pytest.mark.postgres


@pytest.fixture
def uow_factory(postgres_url: str) -> Iterator[Callable[[], UnitOfWork]]:  # type: ignore[no-redef]
    with fresh_postgres_database(postgres_url) as url:
        engine = make_engine(url)
        yield uow_factory_for(engine)
        engine.dispose()
