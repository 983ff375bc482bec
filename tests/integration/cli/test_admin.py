"""The admin commands against a SQLite file in a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from einvoice.api.models import Transition
from einvoice.cli import app
from einvoice.services import accounts, queries
from einvoice.services.intake import submit_document
from einvoice.settings import Settings
from einvoice.store import make_engine, uow_factory_for
from tests.unit.services import documents

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_suppliers_add_prints_the_key_on_the_last_line_and_it_authenticates(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["suppliers", "add", "--name", "Acme", "--endpoint", "0192:123456785", "--vat", "NO123456785MVA"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("eik_")
    engine = make_engine(f"sqlite:///{data_dir / 'einvoice.db'}")
    try:
        supplier = accounts.authenticate_supplier(uow_factory_for(engine)(), key)
    finally:
        engine.dispose()
    assert supplier is not None
    assert (supplier.name, supplier.endpoint, supplier.vat_id) == ("Acme", "0192:123456785", "NO123456785MVA")
    listed = runner.invoke(app, ["suppliers", "list", "--json"])
    assert json.loads(listed.output)[0]["name"] == "Acme"
    assert key not in listed.output


def test_institutions_add_and_list(data_dir: Path) -> None:
    added = runner.invoke(app, ["institutions", "add", "--name", "Ministry", "--endpoint", "0192:987654325"])
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["institutions", "add", "--name", "Other", "--endpoint", "0192:987654325"])
    assert again.exit_code == 1
    bad = runner.invoke(app, ["institutions", "add", "--name", "X", "--endpoint", "987"])
    assert bad.exit_code == 1
    listed = json.loads(runner.invoke(app, ["institutions", "list", "--json"]).output)
    assert [(i["name"], i["endpoint"]) for i in listed] == [("Ministry", "0192:987654325")]


def test_db_upgrade_is_idempotent() -> None:
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "revision" in first.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0


def test_documents_show_and_retry(data_dir: Path) -> None:
    from einvoice.services import process

    runner.invoke(app, ["institutions", "add", "--name", "Ministry", "--endpoint", documents.BUYER_ENDPOINT])
    runner.invoke(app, ["suppliers", "add", "--name", "Acme", "--endpoint", documents.SELLER_ENDPOINT])
    engine = make_engine(f"sqlite:///{data_dir / 'einvoice.db'}")
    factory = uow_factory_for(engine)
    try:
        supplier = accounts.list_suppliers(factory())[0]
        doc = submit_document(
            factory, supplier=supplier, raw=documents.invoice(), idempotency_key=None, settings=Settings()
        ).document.id
        process.mark_dead(factory, doc, stage="validate", cause="test")
        shown = runner.invoke(app, ["documents", "show", doc])
        assert json.loads(shown.output)["status"] == "dead"
        # The history's field names are the API's (GET /v1/documents/{id}: api.models.Transition).
        history = json.loads(shown.output)["history"]
        assert [(t["from_status"], t["to_status"]) for t in history] == [(None, "received"), ("received", "dead")]
        assert set(history[0]) == set(Transition.model_fields)
        retried = runner.invoke(app, ["documents", "retry", doc, "--reason", "artefacts installed"])
        assert retried.exit_code == 0, retried.output
        assert queries.get_document(factory(), doc).status == "received"
        again = runner.invoke(app, ["documents", "retry", doc])
        assert again.exit_code == 1
        assert f"error: conflict: document {doc} is received, not dead: nothing to send back" in again.output
        assert runner.invoke(app, ["documents", "show", "nope"]).exit_code == 1
    finally:
        engine.dispose()


def test_suppliers_new_key_and_deactivate(data_dir: Path) -> None:
    added = runner.invoke(app, ["suppliers", "add", "--name", "Acme", "--endpoint", "0192:123456785"])
    supplier_id = added.output.split()[1].rstrip(":")
    renewed = runner.invoke(app, ["suppliers", "new-key", supplier_id])
    assert renewed.exit_code == 0, renewed.output
    new_key = renewed.output.strip().splitlines()[-1]
    assert runner.invoke(app, ["suppliers", "deactivate", supplier_id]).exit_code == 0
    engine = make_engine(f"sqlite:///{data_dir / 'einvoice.db'}")
    try:
        assert accounts.authenticate_supplier(uow_factory_for(engine)(), new_key) is None
    finally:
        engine.dispose()
    assert runner.invoke(app, ["suppliers", "new-key", "nope"]).exit_code == 1


def test_a_name_or_identifier_too_long_for_the_register_is_refused_with_the_limit(data_dir: Path) -> None:
    name = runner.invoke(app, ["institutions", "add", "--name", "X" * 201, "--endpoint", "0192:974760673"])
    assert name.exit_code == 1
    assert "at most 200 characters, not 201" in name.output
    vat = runner.invoke(app, ["suppliers", "add", "--name", "S", "--endpoint", "0192:974760673", "--vat", "V" * 65])
    assert vat.exit_code == 1
    assert "VAT identifier is at most 64 characters" in vat.output
    assert "Traceback" not in name.output + vat.output
    assert json.loads(runner.invoke(app, ["suppliers", "list", "--json"]).stdout) == []


@pytest.mark.parametrize(
    ("args", "field", "rule"),
    [
        (["--endpoint", "9999:123"], "endpoint 9999:123", "PEPPOL-EN16931-CL008"),
        (["--endpoint", "0088:123"], "endpoint 0088:123", "PEPPOL-COMMON-R040"),
        (["--endpoint", "0192:123456785", "--vat", "not a vat"], "VAT identifier 'not a vat'", "BR-CO-09"),
    ],
)
def test_registration_refuses_bad_identifiers_naming_the_field_and_the_rule(
    args: list[str], field: str, rule: str
) -> None:
    refused = runner.invoke(app, ["suppliers", "add", "--name", "Acme", *args])
    assert refused.exit_code == 1, refused.output
    assert field in refused.output
    assert rule in refused.output
    assert "--unchecked" in refused.output
    assert "Traceback" not in refused.output
    assert json.loads(runner.invoke(app, ["suppliers", "list", "--json"]).stdout) == []


def test_an_institution_with_a_bad_endpoint_is_refused() -> None:
    refused = runner.invoke(app, ["institutions", "add", "--name", "Ministry", "--endpoint", "0192:987654321"])
    assert refused.exit_code == 1
    assert "PEPPOL-COMMON-R041" in refused.output


def test_unchecked_registers_the_made_up_identifiers_of_the_official_samples() -> None:
    institution = runner.invoke(
        app, ["institutions", "add", "--name", "Buyer AB", "--endpoint", "0002:FR23342", "--unchecked"]
    )
    assert institution.exit_code == 0, institution.output
    supplier = runner.invoke(
        app,
        [
            *("suppliers", "add", "--name", "Seller Ltd", "--endpoint", "0088:9482348239847239874"),
            *("--vat", "GB1232434", "--unchecked"),
        ],
    )
    assert supplier.exit_code == 0, supplier.output
    listed = json.loads(runner.invoke(app, ["suppliers", "list", "--json"]).stdout)
    assert [(s["endpoint"], s["vat_id"]) for s in listed] == [("0088:9482348239847239874", "GB1232434")]


def test_an_empty_register_says_which_database_it_read(data_dir: Path) -> None:
    database = f"sqlite:///{(data_dir / 'einvoice.db').resolve()}"
    for group in ("suppliers", "institutions"):
        listed = runner.invoke(app, [group, "list"])
        assert listed.exit_code == 0
        assert f"no {group} registered in {database}" in listed.output
    shown = runner.invoke(app, ["documents", "show", "0190b0f4-0000-7000-8000-000000000000"])
    assert shown.exit_code == 1
    assert f"in {database}" in shown.output
