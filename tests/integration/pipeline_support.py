"""Helpers for the pipeline tests: corpus invoices, waiting for states, worker subprocesses,
fresh RabbitMQ virtual hosts. Servers the tests stop or restart are their own: see
``private_servers``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

from einvoice.domain.states import FINAL_STATES, RESTING_STATES
from einvoice.services import DocumentView, queries
from einvoice.store import UnitOfWork
from tests.conftest import CORPUS_DIR, REPO_ROOT

BASE_EXAMPLE = CORPUS_DIR / "peppol-bis3" / "rules" / "examples" / "base-example.xml"
SELLER_ENDPOINT = "0088:9482348239847239874"
SELLER_VAT = "GB1232434"
BUYER_ENDPOINT = "0002:FR23342"


#: The contract the base example names by its buyer reference (BT-10): registered for its seller,
#: its invoices are matched and approved.
CONTRACT = "0150abc"


def corpus_invoice(number: str, *, payable: str | None = None) -> bytes:
    """The Peppol base example with its number (BT-1) replaced, and its issue date (BT-2) moved by a
    multiple of 8 days the number chooses: examples of one total issued within 7 days of each other
    would be suspected duplicates (``SUSPECTED_DUPLICATE``). ``payable`` breaks BR-CO-16."""
    raw = BASE_EXAMPLE.read_bytes().replace(b"<cbc:ID>Snippet1</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>".encode(), 1)
    issued = date(2017, 11, 13) + timedelta(days=8 * (zlib.crc32(number.encode()) % 4000))
    raw = raw.replace(b"<cbc:IssueDate>2017-11-13<", f"<cbc:IssueDate>{issued.isoformat()}<".encode(), 1)
    if payable is not None:
        raw = raw.replace(
            b'<cbc:PayableAmount currencyID="EUR">1656.25<', f'<cbc:PayableAmount currencyID="EUR">{payable}<'.encode()
        )
    return raw


def register_contract(uow_factory: Callable[[], UnitOfWork], institution_id: str) -> None:
    """The base example's contract (``CONTRACT``) of the institution with its seller, large enough
    for every test's invoices."""
    from tests.unit.services.documents import register_contract as register

    register(uow_factory, institution_id, number=CONTRACT, amount="100000000.00", supplier_endpoint=SELLER_ENDPOINT)


def wait_for(
    uow_factory: Callable[[], UnitOfWork],
    document_ids: Iterable[str],
    *,
    states: frozenset[str] = RESTING_STATES,
    timeout: float = 120.0,
) -> dict[str, DocumentView]:
    """Wait until every document is in one of ``states``; return their views. Raises
    AssertionError with the laggards' states on timeout."""
    ids = list(document_ids)
    deadline = time.monotonic() + timeout
    while True:
        views = {}
        for document_id in ids:
            with contextlib.suppress(Exception):  # the database may be restarting
                views[document_id] = queries.get_document(uow_factory(), document_id)
        if len(views) == len(ids) and all(v.status in states for v in views.values()):
            return views
        if time.monotonic() > deadline:
            laggards = {
                i: (views[i].status if i in views else "?")
                for i in ids
                if i not in views or views[i].status not in states
            }
            raise AssertionError(f"documents not in {sorted(states)} after {timeout} s: {laggards}")
        time.sleep(0.2)


def assert_processed_once(view: DocumentView) -> None:
    """No stage's effect doubled: each outcome state entered at most once (after a dead worker
    the sweeper may send a document back to ``received`` and the stage runs again, which is
    allowed), one final state, findings not repeated."""
    entered = [t.to_status for t in view.history]
    for state in ("validated", "matched", "approved", "rejected", "exception", "posted"):
        assert entered.count(state) <= 1, (state, entered)
    assert sum(1 for s in entered if s in FINAL_STATES) <= 1, entered
    keys = [(f.rule, f.location, f.message) for f in view.findings]
    assert len(keys) == len(set(keys)), "findings recorded twice"


# --- servers -------------------------------------------------------------------------------------


def rabbitmqctl_available() -> bool:
    return shutil.which("rabbitmqctl") is not None


@contextmanager
def fresh_rabbitmq_vhost(server_url: str, rabbitmqctl: Sequence[str] = ("rabbitmqctl",)) -> Iterator[str]:
    """A virtual host of its own, so that other test runs on the same server never consume these
    messages; falls back to the URL's own vhost when ``rabbitmqctl`` is not at hand. ``rabbitmqctl``
    is the command that reaches the server (the machine's node by default)."""
    if list(rabbitmqctl) == ["rabbitmqctl"] and not rabbitmqctl_available():
        yield server_url
        return
    name = f"einvoice_test_{uuid.uuid4().hex[:12]}"
    subprocess.run([*rabbitmqctl, "-q", "add_vhost", name], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [*rabbitmqctl, "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        parsed = urlparse(server_url)
        yield urlunparse(parsed._replace(path="/" + quote(name, safe="")))
    finally:
        subprocess.run([*rabbitmqctl, "-q", "delete_vhost", name], capture_output=True, timeout=60)


# --- worker processes ------------------------------------------------------------------------------


class WorkerProcess:
    """An ``einvoice worker`` subprocess, its output in a log file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *, threads: int = 2, extra_env: dict[str, str] | None = None
    ):
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "einvoice", "worker", "--threads", str(threads)],
            cwd=REPO_ROOT,
            env={**os.environ, **env, **(extra_env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no cleanup, messages in hand unacknowledged."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")
