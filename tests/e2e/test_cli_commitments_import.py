"""``einvoice commitments import``: a CSV of commitment lines against a data directory; rows that fail
are reported on their line and column and stop only their own commitment; a second import of the
same file changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from einvoice.cli import app
from einvoice.services import accounts, commitments
from einvoice.store import make_engine, uow_factory_for

runner = CliRunner()
INSTITUTION = "0192:987654325"

CSV = """\
number,kind,supplier_endpoint,supplier_vat,currency,valid_from,valid_to,amount,price_percent,line,description,quantity,unit_code,unit_price,vat_category,vat_rate,line_account
PO-1,order,0088:7300010000001,,EUR,2026-01-01,2026-12-31,,2,1,Printer paper A4,100,C62,3.50,S,21,2311
PO-1,,,,,,,,,2,Toner,4,C62,55.00,S,21,2311
CT-1,contract,,LV40003000000,EUR,,,120000.00,,,,,,,,,
PO-2,order,0088:7300010000001,,EUR,,,,,1,Pens,10,C62,1.00,S,21,
PO-2,order,0088:7300010000001,,EUR,,,,,2,Ink,-1,C62,1.00,S,21,
PO-3,order,0088:7300010000001,,XYZ,,,,,1,Desk,1,C62,300.00,S,21,
PO-4,order,0088:7399999999999,,EUR,,,,,1,Chair,1,C62,90.00,S,21,
PO-5,order,0088:7300010000001,,EUR,,,,,1,Lamp,1,C62,20.00,S,21,
PO-5,order,0088:7300010000001,,USD,,,,,2,Bulb,1,C62,2.00,S,21,
"""


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    assert runner.invoke(app, ["institutions", "add", "--name", "Ministry", "--endpoint", INSTITUTION]).exit_code == 0
    supplier = ["suppliers", "add", "--name", "Paper SIA", "--endpoint", "0088:7300010000001"]
    assert runner.invoke(app, [*supplier, "--vat", "LV40003000000", "--unchecked"]).exit_code == 0
    return tmp_path


def registered(data_dir: Path) -> dict[str, dict[str, Any]]:
    engine = make_engine(f"sqlite:///{data_dir / 'einvoice.db'}")
    try:
        factory = uow_factory_for(engine)
        institution = accounts.institution_by_endpoint(factory(), INSTITUTION)
        return {c.number: c.to_dict() for c in commitments.list_commitments(factory(), institution_id=institution.id)}
    finally:
        engine.dispose()


def test_rows_that_fail_are_reported_and_stop_only_their_commitment_and_a_second_import_changes_nothing(
    data_dir: Path,
) -> None:
    path = data_dir / "commitments.csv"
    path.write_text(CSV, encoding="utf-8")
    first = runner.invoke(app, ["commitments", "import", "--institution", INSTITUTION, str(path)])
    assert first.exit_code == 1, first.output
    lines = first.output.splitlines()
    assert "row 6, quantity: must be more than zero, not -1" in lines
    assert "row 5: not imported: another row of commitment PO-2 failed" in lines
    assert any(line.startswith("row 7, currency: not an ISO 4217 currency code") for line in lines)
    assert "row 8, supplier_endpoint: no supplier is registered with endpoint 0088:7399999999999" in lines
    assert any(line.startswith("row 10, currency: 'USD' differs from 'EUR' on row 9") for line in lines)
    assert (
        "9 rows, 6 commitments for 0192:987654325: 2 created, 0 unchanged (registered before), 4 failed (6 rows)"
        in lines
    )

    after_first = registered(data_dir)
    assert sorted(after_first) == ["CT-1", "PO-1"]
    po = after_first["PO-1"]
    # 350.00 + 220.00 at 21 %: 570.00 + 119.70
    assert (po["amount"], po["tolerances"]["price_percent"], po["valid_to"]) == ("689.70", "2", "2026-12-31")
    assert [(x["id"], x["ordered"], x["unit_price"], x["account"]) for x in po["lines"]] == [
        ("1", "100", "3.50", "2311"),
        ("2", "4", "55.00", "2311"),
    ]
    assert (after_first["CT-1"]["kind"], after_first["CT-1"]["amount"], after_first["CT-1"]["lines"]) == (
        "contract",
        "120000.00",
        [],
    )

    second = runner.invoke(app, ["commitments", "import", "--institution", INSTITUTION, str(path)])
    assert second.exit_code == 1
    assert "2 created" not in second.output
    assert "0 created, 2 unchanged (registered before), 4 failed (6 rows)" in second.output
    assert registered(data_dir) == after_first


def test_a_file_all_good_exits_0_and_a_header_it_cannot_read_is_refused(data_dir: Path) -> None:
    good = data_dir / "good.csv"
    good.write_text("\n".join(CSV.splitlines()[:4]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["commitments", "import", "--institution", INSTITUTION, str(good)])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    bad = data_dir / "bad.csv"
    bad.write_text("number,kind,colour\nPO-9,order,blue\n", encoding="utf-8")
    refused = runner.invoke(app, ["commitments", "import", "--institution", INSTITUTION, str(bad)])
    assert refused.exit_code == 1
    assert "has unknown columns: colour; lacks the columns: currency" in refused.output
    unknown = runner.invoke(app, ["commitments", "import", "--institution", "0192:111", str(good)])
    assert unknown.exit_code == 1
    assert "no institution with endpoint 0192:111" in unknown.output
