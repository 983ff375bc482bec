"""The push connector against a loopback ERP on 127.0.0.1 (``benchmarks.erp.LoopbackErp``): the
signature an ERP can verify, the Idempotency-Key it applies each entry once by, which answers are
tried again and which refuse the entry; and, through the embedded engine's own worker, a document
whose ERP keeps failing dead-lettered with the cause after the last retry, then sent again by a
person (``documents retry``) and posted once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from einvoice.benchmarks.erp import Faults, LoopbackErp
from einvoice.bootstrap import build
from einvoice.cli import app
from einvoice.domain.states import DocumentStatus as S
from einvoice.errors import ErpDeliveryError, ErpRefusedError
from einvoice.posting.push import PushSender, body_of, signature, verify_signature
from einvoice.services import DocumentView, accounts, posting, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from tests.integration.posting_support import CHART, PROFILE, valid
from tests.unit.services import documents

SECRET = b"shared with the ERP"
ENTRY = {"id": "je_1", "document_id": "1", "lines": [], "totals": {"debit": "0.00", "credit": "0.00"}}


@pytest.fixture
def erp() -> Iterator[LoopbackErp]:
    server = LoopbackErp(SECRET)
    yield server
    server.close()


def sender(erp: LoopbackErp, **kw: object) -> PushSender:
    return PushSender(erp.url, secret=SECRET, token="t0ken", **kw)  # type: ignore[arg-type]


def test_a_push_is_signed_over_its_body_and_keyed_by_the_entry_id() -> None:
    seen: list[httpx.Request] = []

    def erp(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    push = PushSender("https://erp.example/entries", secret=SECRET, token="t0ken", transport=httpx.MockTransport(erp))
    assert push.send(ENTRY) == 201
    (request,) = seen
    assert request.headers["Idempotency-Key"] == "je_1"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.content == body_of(ENTRY)
    assert json.loads(request.content) == ENTRY
    header = request.headers["X-Einvoice-Signature"]
    assert header.startswith("sha256=")
    assert len(header) == len("sha256=") + 64
    assert verify_signature(SECRET, request.content, header)
    assert not verify_signature(b"another secret", request.content, header)
    assert not verify_signature(SECRET, request.content + b" ", header)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ErpDeliveryError), (503, ErpDeliveryError), (429, ErpDeliveryError), (409, ErpDeliveryError),
     (400, ErpRefusedError), (422, ErpRefusedError), (404, ErpRefusedError)],
)  # fmt: skip
def test_which_answers_are_tried_again(status: int, error: type[Exception]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text="the ERP's words"))
    push = PushSender("https://erp.example/entries", secret=SECRET, transport=transport)
    with pytest.raises(error, match=f"{status}"):
        push.send(ENTRY)


@pytest.mark.parametrize("fault", ["fail", "slow", "drop"])
def test_a_fault_is_tried_again_and_the_erp_applies_the_entry_once(erp: LoopbackErp, fault: str) -> None:
    erp.faults = Faults(**{fault: 1.0}, slow_seconds=1.0)  # type: ignore[arg-type]
    push = sender(erp, timeout=0.3)
    with pytest.raises(ErpDeliveryError):
        push.send(ENTRY)
    erp.faults = Faults()
    assert push.send(ENTRY) == 200  # the retry
    assert push.send(ENTRY) == 200  # and a repeat
    assert erp.ledger.applied == {"je_1": 1}
    assert erp.ledger.deliveries["je_1"] == 3
    assert erp.ledger.bad_signatures == 0


def test_an_erp_that_answers_twice_confuses_nothing(erp: LoopbackErp) -> None:
    """The second copy of an answer is never read as the answer to the next entry (on a kept-alive
    connection it was: je_2 confirmed, never received)."""
    erp.faults = Faults(twice=1.0)
    push = sender(erp)
    assert [push.send({**ENTRY, "id": f"je_{n}"}) for n in range(3)] == [200, 200, 200]
    assert erp.ledger.applied == {"je_0": 1, "je_1": 1, "je_2": 1}


def test_an_erp_that_cannot_verify_the_signature_refuses_the_entry(erp: LoopbackErp) -> None:
    push = PushSender(erp.url, secret=b"not the ERP's secret")
    with pytest.raises(ErpRefusedError, match="401 bad signature"):
        push.send(ENTRY)
    assert erp.ledger.applied == {}
    assert signature(SECRET, b"{}") != signature(b"not the ERP's secret", b"{}")


def wait_for(
    view: Callable[[], DocumentView], until: Callable[[DocumentView], bool], timeout: float = 60
) -> DocumentView:
    deadline = time.monotonic() + timeout
    while not until(found := view()):
        if time.monotonic() > deadline:
            pytest.fail(f"still {found.status}: {found.failure_reason}")
        time.sleep(0.1)
    return found


def test_a_document_dead_lettered_after_the_last_retry_is_sent_again_by_a_person(
    erp: LoopbackErp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    settings = Settings(
        data_dir=tmp_path,
        posting_enabled=True,
        erp_connector="http",
        erp_url=erp.url,
        erp_signing_secret=SECRET.decode(),  # type: ignore[arg-type]
        erp_timeout_seconds=2,
        max_retries=1,
    )
    runtime = build(settings, validator=valid)
    uow_factory = runtime.uow_factory
    ministry = accounts.add_institution(
        uow_factory(), name="Ministry", endpoint=documents.BUYER_ENDPOINT, unchecked=True
    )
    supplier, _ = accounts.add_supplier(
        uow_factory(), name="Acme", endpoint=documents.SELLER_ENDPOINT, vat=documents.SELLER_VAT, unchecked=True
    )
    documents.register_contract(uow_factory, ministry.id)  # the invoice's BT-10: matched, approved
    buyer = documents.BUYER_ENDPOINT
    posting.import_accounts(uow_factory(), endpoint=buyer, text=CHART, effective_from=date(2026, 1, 1))
    posting.set_posting_profile(uow_factory(), endpoint=documents.BUYER_ENDPOINT, data=PROFILE)
    erp.faults = Faults(fail=1.0)  # the ERP is down
    runtime.start_background()
    try:
        doc = submit_document(
            uow_factory, supplier=supplier, raw=documents.invoice("DL-1"), idempotency_key=None, settings=settings
        ).document.id
        runtime.wake_relay()
        dead = wait_for(lambda: queries.get_document(uow_factory(), doc), lambda d: d.status == S.DEAD)
        assert dead.failure_reason is not None
        assert dead.failure_reason.startswith("gave up after 1 retries: ")
        assert "the ERP answered 503: busy" in dead.failure_reason
        assert [t.to_status for t in dead.history][-3:] == ["posting", "posting_failed", "dead"]
        assert erp.ledger.applied == {}

        erp.faults = Faults()  # the ERP is back; a person sends the document again
        result = CliRunner().invoke(app, ["documents", "retry", doc, "--reason", "ERP back"])
        assert result.exit_code == 0, result.output
        runtime.wake_relay()
        posted = wait_for(lambda: queries.get_document(uow_factory(), doc), lambda d: d.status == S.POSTED)
        assert posted.history[-1].detail == f"journal je_{doc} confirmed by push:200"
        assert [t.to_status for t in posted.history].count(S.POSTED) == 1
        assert erp.ledger.applied == {f"je_{doc}": 1}
    finally:
        runtime.stop()
