"""The push drill on PostgreSQL and RabbitMQ with real ``einvoice worker`` processes: a loopback
ERP on 127.0.0.1 that fails at random, answers slowly, drops connections after receiving and
answers twice, and a worker killed (``kill -9``) in the middle of a push, the ERP holding its
request. Afterwards the ERP has applied each entry exactly once (counted by Idempotency-Key) and
every document is ``posted`` once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from einvoice.benchmarks.erp import Faults, LoopbackErp
from einvoice.domain.states import DocumentStatus as S
from einvoice.services import posting
from tests.integration import test_pipeline_production
from tests.integration.pipeline_support import BUYER_ENDPOINT, assert_processed_once, corpus_invoice, wait_for
from tests.integration.posting_support import CORPUS_PROFILE
from tests.integration.test_pipeline_production import Production

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

production = test_pipeline_production.production
database_url = test_pipeline_production.database_url
broker_url = test_pipeline_production.broker_url
SECRET = "drill secret"


@pytest.fixture
def erp() -> Iterator[LoopbackErp]:
    faults = Faults(fail=0.15, slow=0.1, drop=0.1, twice=0.15, stall=1, slow_seconds=3.0, seed=12)
    server = LoopbackErp(SECRET.encode(), faults)
    yield server
    server.close()


def test_each_entry_is_applied_once_and_each_document_posted_once(production: Production, erp: LoopbackErp) -> None:
    posting.set_posting_profile(production.uow_factory(), endpoint=BUYER_ENDPOINT, data=CORPUS_PROFILE)
    push = {
        "EINVOICE_POSTING_ENABLED": "true",
        "EINVOICE_ERP_CONNECTOR": "http",
        "EINVOICE_ERP_URL": erp.url,
        "EINVOICE_ERP_TOKEN": "drill-token",
        "EINVOICE_ERP_SIGNING_SECRET": SECRET,
        "EINVOICE_ERP_TIMEOUT_SECONDS": "2",
    }
    doomed = production.start_worker("doomed", **push)
    docs = [production.submit(corpus_invoice(f"PUSH-{n}")) for n in range(16)]
    assert erp.stalled.wait(180), production.logs()  # the first push is held by the ERP, applied
    doomed.kill()  # kill -9 in the middle of that push
    erp.release()
    production.start_worker("survivor-1", **push)
    production.start_worker("survivor-2", **push)
    try:
        views = wait_for(production.uow_factory, docs, states=frozenset({S.POSTED, S.DEAD}), timeout=300)
    except AssertionError:
        print(production.logs())
        raise
    assert {d: v.status for d, v in views.items()} == dict.fromkeys(docs, S.POSTED), production.logs()
    for view in views.values():
        assert_processed_once(view)
        assert [t.to_status for t in view.history].count(S.POSTED) == 1
    # The killed worker's push was sent again (its message back from RabbitMQ resuming its claim, or
    # the sweeper taking the document back when the lease ran out) and applied once all the same.
    (killed,) = erp.ledger.stalled
    assert erp.ledger.deliveries[killed] >= 2
    assert erp.ledger.applied == {f"je_{d}": 1 for d in docs}  # exactly once each, by Idempotency-Key
    assert erp.ledger.bad_signatures == 0
    faults = erp.ledger.faults
    assert faults["stall"] == 1
    assert sum(faults.values()) > len(docs)  # some entries went more than once
    sent_again = sum(1 for d in docs if erp.ledger.deliveries[f"je_{d}"] > 1)
    print(f"deliveries {sum(erp.ledger.deliveries.values())} for {len(docs)} entries; faults {dict(faults)}; "
          f"{sent_again} entries sent more than once")  # fmt: skip
    # Nothing left behind: a message the sweeper wrote meanwhile (for a document it found waiting)
    # goes out with the workers' next relay poll, within a second or two.
    deadline = time.monotonic() + 15
    while True:
        with production.uow_factory() as uow:
            pending = uow.outbox.pending_count()
        if pending == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pending == 0, production.logs()
