"""The chart of accounts and the posting profile as a person sets them: ``einvoice accounts
import``, ``einvoice posting-profile set|show``, and the same through ``PUT
/v1/institutions/{endpoint}/accounts`` and ``/posting-profile`` with the key ``einvoice institutions
new-key`` issues; with ``EINVOICE_POSTING_ENABLED`` the server's own pipeline exports an entry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from einvoice.api import create_app
from einvoice.bootstrap import build
from einvoice.cli import app
from einvoice.settings import Settings
from tests.integration.posting_support import CORPUS_CHART, CORPUS_PROFILE, chart_csv, valid
from tests.unit.services.documents import register_contract

BUYER = "0002:FR23342"
OTHER = "0002:FR99999"
CHART = chart_csv(
    [("5310", "Accounts payable", "liability"), ("5721", "Input VAT 21%", "asset"), ("2239", "Supplies", "expense")]
)
PROFILE = {"payable": "5310", "input_vat": {"21": "5721"}, "default_expense": "2239", "allowances": "spread"}
CSV = {"Content-Type": "text/csv"}
cli = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    for endpoint in (BUYER, OTHER):
        result = cli.invoke(app, ["institutions", "add", "--name", endpoint, "--endpoint", endpoint, "--unchecked"])
        assert result.exit_code == 0, result.output
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_imports_a_chart_and_sets_a_profile_that_must_fit_it(data_dir: Path) -> None:
    chart = data_dir / "chart.csv"
    chart.write_text(CHART)
    code, out = run("accounts", "import", "--institution", BUYER, str(chart), "--effective-from", "2026-01-01")
    assert (code, out.strip()) == (0, f"3 accounts for {BUYER}, in force from 2026-01-01")

    code, out = run("posting-profile", "set", "--institution", BUYER, json.dumps({**PROFILE, "rounding": "8690"}))
    assert code == 1
    assert "accounts the posting profile names are not in the chart in force from 2026-01-01: rounding 8690" in out

    (data_dir / "profile.json").write_text(json.dumps(PROFILE))
    code, out = run("posting-profile", "set", "--institution", BUYER, f"@{data_dir / 'profile.json'}")
    assert code == 0, out
    assert "incomplete, lacks output_vat, self_assessment_rate, rounding, prepaid" in out
    code, out = run("posting-profile", "show", "--institution", BUYER)
    assert json.loads(out)["input_vat"] == {"21": "5721"}

    chart.write_text("number,name,kind\n5310,Accounts payable,liability\n")
    code, out = run("accounts", "import", "--institution", BUYER, str(chart))
    assert code == 1
    assert "input_vat.21 5721" in out
    chart.write_text("number,name,kind\n5310,Payables,debt\n")
    code, out = run("accounts", "import", "--institution", BUYER, str(chart))
    assert code == 1
    assert "row 2: account 5310: kind is one of asset, liability, equity, income, expense, not 'debt'" in out
    chart.write_text(CHART)
    code, out = run("accounts", "import", "--institution", "0002:NOBODY", str(chart))
    assert (code, "no institution with endpoint 0002:NOBODY" in out) == (1, True)


def test_the_institution_routes_need_the_institutions_own_key(data_dir: Path) -> None:
    code, out = run("institutions", "new-key", BUYER)
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    other_key = run("institutions", "new-key", OTHER)[1].strip().splitlines()[-1]
    runtime = build(Settings(data_dir=data_dir))
    client = TestClient(create_app(runtime))
    url = f"/v1/institutions/{BUYER}"
    csv = {"Content-Type": "text/csv"}
    try:
        assert client.put(f"{url}/accounts", content=CHART, headers=csv).status_code == 401
        denied = client.put(f"{url}/accounts", content=CHART, headers=csv | {"Authorization": f"Bearer {other_key}"})
        assert denied.status_code == 403

        auth = {"Authorization": f"Bearer {key}"}
        answer = client.put(f"{url}/accounts?effective_from=2026-01-01", content=CHART, headers=csv | auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["effective_from"] == "2026-01-01"
        assert [a["number"] for a in answer.json()["accounts"]] == ["5310", "5721", "2239"]

        answer = client.put(f"{url}/posting-profile", json={**PROFILE, "prepaid": "2390"}, headers=auth)
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert "prepaid 2390" in answer.json()["detail"]
        answer = client.put(f"{url}/posting-profile", json={**PROFILE, "payables": "1"}, headers=auth)
        assert (answer.status_code, answer.json()["detail"]) == (422, "unknown posting profile keys: payables")

        answer = client.put(f"{url}/posting-profile", json=PROFILE, headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["profile"]["payable"] == "5310"
        assert body["missing"] == ["output_vat", "self_assessment_rate", "rounding", "prepaid"]
        assert body["sent_on"] == 0
        paths = client.get("/openapi.json").json()["paths"]
        assert {f"/v1/institutions/{{endpoint}}/{p}" for p in ("accounts", "posting-profile")} <= set(paths)
    finally:
        client.close()
        runtime.stop()


def wait_for(what: Callable[[], dict[str, Any]], until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not until(found := what()):
        if time.monotonic() > deadline:
            pytest.fail(f"still {found}")
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("enabled", [False, True])
def test_a_served_document_waits_for_the_profile_then_is_exported_and_posted_once_confirmed(
    data_dir: Path, corpus_dir: Path, enabled: bool
) -> None:
    """``EINVOICE_POSTING_ENABLED`` off (the default): approved is where documents rest, as before.
    On: the served pipeline holds the document in approved with the reason, the profile set over
    HTTP sends it on, the folder connector exports its entry, and ``erp confirm`` gets it posted."""
    from einvoice.services import accounts

    key = run("institutions", "new-key", BUYER)[1].strip().splitlines()[-1]
    settings = Settings(data_dir=data_dir, posting_enabled=enabled, stuck_after_seconds=1)
    runtime = build(settings, validator=valid)
    _, supplier_key = accounts.add_supplier(
        runtime.uow_factory(), name="Seller Ltd", endpoint="0088:9482348239847239874", vat="GB1232434", unchecked=True
    )
    buyer = accounts.institution_by_endpoint(runtime.uow_factory(), BUYER)
    register_contract(  # the contract the example names by its buyer reference (BT-10)
        runtime.uow_factory, buyer.id, number="0150abc", supplier_endpoint="0088:9482348239847239874"
    )
    runtime.start_background()
    client = TestClient(create_app(runtime))
    raw = (corpus_dir / "peppol-2026.5/billing/base-example.xml").read_bytes()

    def show(document_id: str) -> Callable[[], dict[str, Any]]:
        # stdout alone: the served engine's threads log to stderr while the command runs in-process
        return lambda: json.loads(cli.invoke(app, ["documents", "show", document_id]).stdout)

    try:
        sent = client.post(
            "/v1/documents",
            content=raw,
            headers={"Authorization": f"Bearer {supplier_key}", "Content-Type": "application/xml"},
        )
        assert sent.status_code == 202, sent.text
        doc = sent.json()["id"]
        if not enabled:
            rested = wait_for(show(doc), lambda d: d["status"] == "approved")
            time.sleep(1.5)
            assert runtime.sweep_once() == 0  # nothing wired to post: approved is where it rests
            assert show(doc)()["history"] == rested["history"]
            assert [t["to_status"] for t in rested["history"]][-1] == "approved"
            assert not settings.effective_erp_outbox_dir.exists()
            return
        held = wait_for(show(doc), lambda d: d["failure_reason"] is not None)
        assert held["status"] == "approved"
        assert held["failure_reason"] == f"waiting: institution {BUYER} has no posting profile"
        time.sleep(1.5)
        assert runtime.sweep_once() == 0  # held with its reason: the sweeper sends no message
        assert show(doc)()["history"] == held["history"]

        auth = {"Authorization": f"Bearer {key}"}
        loaded = client.put(f"/v1/institutions/{BUYER}/accounts", content=CORPUS_CHART, headers=auth | CSV)
        assert loaded.status_code == 200, loaded.text
        answer = client.put(f"/v1/institutions/{BUYER}/posting-profile", json=CORPUS_PROFILE, headers=auth)
        assert (answer.status_code, answer.json()["missing"], answer.json()["sent_on"]) == (200, [], 1), answer.text

        batch = settings.effective_erp_outbox_dir / f"je_{doc}.jsonl"
        wait_for(lambda: {"exported": batch.exists()}, lambda d: d["exported"])
        entry = json.loads(batch.read_text())
        assert entry["totals"] == {"debit": "3156.25", "credit": "3156.25"}
        waiting = wait_for(show(doc), lambda d: d["status"] == "posting" and d["failure_reason"] is not None)
        assert waiting["failure_reason"].endswith("waiting for its .ack")  # held for the ERP's confirmation
        code, out = run("erp", "confirm", batch.name)
        assert (code, out.strip()) == (0, f"batch {batch.name} confirmed; its document is posted")
        done = show(doc)()
        assert done["history"][-1]["actor"] == "cli:erp confirm"
        assert (done["journal_ref"], done["failure_reason"]) == (f"je_{doc}", None)
        assert [t["to_status"] for t in done["history"]].count("posted") == 1
    finally:
        client.close()
        runtime.stop()
