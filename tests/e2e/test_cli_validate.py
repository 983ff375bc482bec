"""``einvoice validate`` and ``einvoice bench validate`` as a user runs them: a real process, real artefacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {"file", "document_type", "customization_id", "rules", "valid", "findings"}
FINDING_KEYS = {"rule", "severity", "layer", "location", "line", "message"}


@pytest.fixture(scope="module")
def env(shared_dir: Path) -> dict[str, str]:
    return {**os.environ, "EINVOICE_RULES_DIR": str(shared_dir / "rules"), "EINVOICE_SHARED_DIR": str(shared_dir)}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "einvoice", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def billing(corpus_dir: Path) -> Path:
    return corpus_dir / "peppol-2026.5" / "billing"


@pytest.fixture
def invalid_file(tmp_path: Path, billing: Path) -> Path:
    data = (billing / "base-example.xml").read_bytes()
    path = tmp_path / "bad.xml"
    path.write_bytes(data.replace(b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:DocumentCurrencyCode>QQQ<"))
    return path


def test_folder_of_valid_documents_json_exit_0(env: dict[str, str], billing: Path) -> None:
    result = run(env, "validate", "--format", "json", "--jobs", "2", str(billing))
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert len(reports) == len(list(billing.glob("*.xml")))
    assert [r["file"] for r in reports] == sorted(r["file"] for r in reports)
    for report in reports:
        assert set(report) >= KEYS
        assert report["valid"] is True
        assert report["rules"] == "peppol-bis3"


def test_jobs_spreads_a_large_batch_over_processes_keeping_order(
    env: dict[str, str], billing: Path, tmp_path: Path
) -> None:
    base = (billing / "base-example.xml").read_bytes()
    bad = base.replace(b"<cbc:DocumentCurrencyCode>EUR<", b"<cbc:DocumentCurrencyCode>QQQ<")
    for i in range(110):
        (tmp_path / f"doc-{i:03d}.xml").write_bytes(bad if i % 37 == 5 else base)
    result = run(env, "validate", "-f", "json", "--jobs", "2", str(tmp_path))
    assert result.returncode == 1, result.stderr
    reports = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in reports] == [f"doc-{i:03d}.xml" for i in range(110)]
    assert [i for i, r in enumerate(reports) if not r["valid"]] == [5, 42, 79]


def test_invalid_document_exit_1_with_findings(env: dict[str, str], invalid_file: Path, billing: Path) -> None:
    result = run(env, "validate", "-f", "json", "--jobs", "1", str(invalid_file), str(billing / "base-example.xml"))
    assert result.returncode == 1, result.stderr
    bad, good = json.loads(result.stdout)
    assert bad["valid"] is False
    assert good["valid"] is True
    rules = {f["rule"] for f in bad["findings"]}
    assert "BR-CL-04" in rules
    for finding in bad["findings"]:
        assert set(finding) >= FINDING_KEYS
        assert finding["severity"] in ("fatal", "warning", "information")
        assert finding["layer"] in ("xsd", "en16931", "peppol")


def test_text_and_html_formats(env: dict[str, str], invalid_file: Path, tmp_path: Path) -> None:
    text = run(env, "validate", str(invalid_file))
    assert text.returncode == 1
    assert "INVALID" in text.stdout
    assert "BR-CL-04" in text.stdout
    out = tmp_path / "report.html"
    html = run(env, "validate", "--format", "html", "--output", str(out), str(invalid_file))
    assert html.returncode == 1
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "BR-CL-04" in page
    assert "QQQ" in page


def test_skip_xsd_rules_and_svrl(env: dict[str, str], billing: Path) -> None:
    result = run(
        env, "validate", "-f", "json", "--skip-xsd", "--rules", "en16931", "--svrl", str(billing / "base-example.xml")
    )
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["rules"] == "en16931"
    assert "schematron-output" in report["svrl"]["en16931"]


def test_missing_path_exit_2_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "validate", str(tmp_path / "nope.xml"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nope.xml" in result.stderr


def test_unknown_option_value_is_usage_error(env: dict[str, str], billing: Path) -> None:
    assert run(env, "validate", "--rules", "xrechnung", str(billing)).returncode == 2


def test_missing_artefacts_exit_2_with_error_verdict(env: dict[str, str], billing: Path, tmp_path: Path) -> None:
    result = run(
        {**env, "EINVOICE_RULES_DIR": str(tmp_path)}, "validate", "-f", "json", str(billing / "base-example.xml")
    )
    assert result.returncode == 2
    (report,) = json.loads(result.stdout)
    assert report["verdict"] == "error"
    assert report["valid"] is False


def test_not_well_formed_and_unsupported_exit_1(env: dict[str, str], tmp_path: Path, corpus_dir: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<Invoice><a></Invoice>")
    order_response = corpus_dir / "peppol-2026.5" / "OrderResponse_Example.xml"  # no rules for T76 here
    result = run(env, "validate", "-f", "json", "-j", "1", str(broken), str(order_response))
    assert result.returncode == 1
    reports = json.loads(result.stdout)
    assert [r["verdict"] for r in reports] == ["invalid", "unsupported"]
    assert [[f["rule"] for f in r["findings"]] for r in reports] == [["XML-WELL-FORMED"], ["DOCUMENT-TYPE"]]


def test_the_other_peppol_documents_are_validated_with_their_rule_sets(env: dict[str, str], corpus_dir: Path) -> None:
    folder = corpus_dir / "peppol-2026.5"
    names = ("Order_Example.xml", "DespatchAdvice_Example.xml", "InvoiceResponse_Example.xml")
    paths = [str(folder / name) for name in (*names, "MessageLevelResponse_Example.xml")]
    result = run(env, "validate", "-f", "json", "-j", "1", *paths)
    assert result.returncode == 0, result.stdout
    reports = json.loads(result.stdout)
    assert [(r["verdict"], r["rules"], r["rules_version"]) for r in reports] == [
        ("valid", "peppol-order", "2026.5"),
        ("valid", "peppol-despatch-advice", "2026.5"),
        ("valid", "peppol-invoice-response", "2026.5"),
        ("valid", "peppol-mlr", "2026.5"),
    ]
    assert [r["artefacts"][-1]["id"] for r in reports] == [
        "peppol-bis3-2026.5/PEPPOLBIS-T01.xslt",
        "peppol-poacc-2026.5/PEPPOLBIS-T16.xslt",
        "peppol-bis3-2026.5/PEPPOLBIS-T111.xslt",
        "peppol-poacc-2026.5/PEPPOLBIS-T71.xslt",
    ]
    text = run(env, "validate", "-j", "1", paths[0]).stdout
    assert text.startswith(f"{paths[0]}: VALID (Order, peppol-order 2026.5) - 0 fatal")


@pytest.mark.slow
def test_bench_validate_json(env: dict[str, str], billing: Path) -> None:
    result = run(env, "bench", "validate", "--repeat", "1", "--jobs", "2", "--json", str(billing))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["single"]["docs_per_s"] > 0
    assert figures["parallel"]["jobs"] == 2
    assert set(figures["single"]["ms_per_doc"]) >= {"parse", "xsd", "en16931", "peppol"}
    assert figures["compile_seconds"]["total"] > 0
    assert figures["peak_rss_mib"] > 0


def test_bench_validate_reference_loop_runs_the_official_stylesheets(env: dict[str, str], billing: Path) -> None:
    result = run(env, "bench", "validate", "--repeat", "1", "--jobs", "1", "--reference", "--json", str(billing))
    assert result.returncode == 0, result.stderr
    reference = json.loads(result.stdout)["reference"]
    assert reference["rules"] == "peppol-bis3"
    assert reference["stylesheets"] == [
        "peppol-bis3-2026.5/CEN-EN16931-UBL.xslt",
        "peppol-bis3-2026.5/PEPPOL-EN16931-UBL.xslt",
    ]
    assert 0 < reference["cpu_ms_per_doc_best"] <= reference["cpu_ms_per_doc"]
    assert len(reference["rounds"]) == 3
