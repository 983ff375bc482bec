"""What ``einvoice validate`` tells a user beyond the report: the summary when the report goes to a
file, an option it cannot honour, and a file that is not XML at all."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(shared_dir: Path) -> dict[str, str]:
    return {**os.environ, "EINVOICE_RULES_DIR": str(shared_dir / "rules"), "EINVOICE_SHARED_DIR": str(shared_dir)}


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "einvoice", *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture(scope="module")
def base_example(corpus_dir: Path) -> bytes:
    return (corpus_dir / "peppol-2026.5" / "billing" / "base-example.xml").read_bytes()


def test_a_report_written_to_a_file_prints_the_summary(
    env: dict[str, str], base_example: bytes, tmp_path: Path
) -> None:
    (tmp_path / "good.xml").write_bytes(base_example)
    (tmp_path / "bad.xml").write_bytes(
        base_example.replace(b">EUR</cbc:DocumentCurrencyCode>", b">QQQ</cbc:DocumentCurrencyCode>")
    )
    result = run(env, "validate", "-o", "report.html", "-f", "html", "good.xml", "bad.xml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == "2 documents: 1 invalid, 1 valid; report written to report.html"
    assert "<html" in (tmp_path / "report.html").read_text(encoding="utf-8").lower()


def test_svrl_with_a_text_report_says_it_is_for_json_only(
    env: dict[str, str], base_example: bytes, tmp_path: Path
) -> None:
    (tmp_path / "good.xml").write_bytes(base_example)
    result = run(env, "validate", "--svrl", str(tmp_path / "good.xml"))
    assert result.returncode == 0, result.stderr
    assert "--svrl" in result.stderr
    assert "--format json" in result.stderr


def test_a_pdf_a_factur_x_pdf_and_a_zip_are_named_with_what_to_send_instead(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "invoice.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    (tmp_path / "facturx.pdf").write_bytes(
        b"%PDF-1.7\n1 0 obj << /Type /Filespec /F (factur-x.xml) /AFRelationship /Data >> endobj\n%%EOF\n"
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("invoice.xml", "<Invoice/>")
    (tmp_path / "invoices.zip").write_bytes(archive.getvalue())
    result = run(env, "validate", *(str(tmp_path / n) for n in ("invoice.pdf", "facturx.pdf", "invoices.zip")))
    assert result.returncode == 1, result.stderr
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines() if "INTAKE-" in line}
    assert "'<' not found" not in result.stdout
    assert "a PDF document" in result.stdout
    assert "Factur-X" in result.stdout
    assert "a ZIP archive" in result.stdout
    assert result.stdout.count("send the UBL 2.1 Invoice or CreditNote XML") == 3, lines
