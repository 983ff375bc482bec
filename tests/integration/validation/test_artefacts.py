"""Artefact manifest, install (directory, zip, download), verify, and ``einvoice rules``."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from einvoice.errors import ArtefactCorruptError, ArtefactError, ArtefactMissingError
from einvoice.settings import Settings
from einvoice.validation import artefacts

SET_IDS = ("ubl-2.1", "en16931-1.3.16", "peppol-bis3-2026.5", "peppol-poacc-2026.5")


@pytest.fixture(scope="module")
def rules_source(shared_dir: Path) -> Path:
    return shared_dir / "rules"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, rules_source: Path) -> Path:
    """One verified install shared by the read-only tests of this module."""
    rules_dir = tmp_path_factory.mktemp("installed")
    artefacts.install(rules_source, Settings(rules_dir=rules_dir))
    return rules_dir


def _zip_dir(folder: Path, target: Path, top: str = "rules") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file_path in sorted(folder.rglob("*")):
            if file_path.is_file():
                archive.write(file_path, f"{top}/{file_path.relative_to(folder).as_posix()}")
    return target


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_lists_the_four_sets_with_dates_and_sources() -> None:
    manifest = artefacts.load_manifest()
    assert tuple(s.id for s in manifest.sets) == SET_IDS
    for artefact_set in manifest.sets:
        assert artefact_set.files
        assert artefact_set.in_force_from.year >= 2013
        assert artefact_set.source.homepage
        for entry in artefact_set.files:
            assert len(entry.sha256) == 64
            assert entry.size > 0
    assert manifest.get("ubl-2.1").source.url == "https://docs.oasis-open.org/ubl/os-UBL-2.1/UBL-2.1.zip"


def test_manifest_names_the_files_the_engine_needs() -> None:
    manifest = artefacts.load_manifest()
    ubl = manifest.get("ubl-2.1")
    assert ubl.file("xsd/maindoc/UBL-Invoice-2.1.xsd") is not None
    assert ubl.file("xsd/maindoc/UBL-CreditNote-2.1.xsd") is not None
    assert manifest.get("en16931-1.3.16").file("EN16931-UBL-validation.xslt") is not None
    peppol = manifest.get("peppol-bis3-2026.5")
    for name in (
        "CEN-EN16931-UBL.xslt",
        "PEPPOL-EN16931-UBL.xslt",
        "PEPPOLBIS-T01.xslt",
        "PEPPOLBIS-T110.xslt",
        "PEPPOLBIS-T111.xslt",
        "sch/PEPPOL-EN16931-UBL.sch",
    ):
        assert peppol.file(name) is not None, name
    # Despatch Advice (T16) and Message Level Response (T71): a set of its own, the sets above unchanged.
    poacc = manifest.get("peppol-poacc-2026.5")
    assert (poacc.family, poacc.version) == ("peppol-poacc", "2026.5")
    assert [f.relpath for f in poacc.files] == ["PEPPOLBIS-T16.xslt", "PEPPOLBIS-T71.xslt"]


def test_manifest_is_what_the_shared_rules_hash_to(rules_source: Path) -> None:
    current = json.loads(artefacts.MANIFEST_PATH.read_text(encoding="utf-8"))
    assert artefacts.build_manifest(rules_source) == current


def test_unknown_set_is_a_clear_error() -> None:
    with pytest.raises(ArtefactMissingError, match="'nope' is not in the manifest"):
        artefacts.load_manifest().get("nope")


def test_malformed_manifest_is_an_artefact_error(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text('{"sets": [{"id": "x"}]}', encoding="utf-8")
    with pytest.raises(ArtefactError, match="malformed artefact manifest"):
        artefacts.load_manifest(bad)


# --- path and verify -----------------------------------------------------------------------------


def test_path_returns_the_installed_file(installed: Path) -> None:
    found = artefacts.path("ubl-2.1", "xsd/maindoc/UBL-Invoice-2.1.xsd", Settings(rules_dir=installed))
    assert found == installed / "ubl-2.1" / "xsd" / "maindoc" / "UBL-Invoice-2.1.xsd"
    assert found.is_file()


def test_path_of_a_missing_install_names_the_file_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(ArtefactMissingError) as info:
        artefacts.path("en16931-1.3.16", "EN16931-UBL-validation.xslt", Settings(rules_dir=tmp_path))
    message = str(info.value)
    assert str(tmp_path / "en16931-1.3.16" / "EN16931-UBL-validation.xslt") in message
    assert "einvoice rules install" in message
    assert "\n" not in message


def test_path_of_a_file_the_manifest_does_not_list(installed: Path) -> None:
    with pytest.raises(ArtefactMissingError, match="not in the manifest"):
        artefacts.path("ubl-2.1", "xsd/evil.xsd", Settings(rules_dir=installed))


def test_path_notices_a_truncated_file(tmp_path: Path, installed: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(installed, rules_dir)
    (rules_dir / "en16931-1.3.16" / "EN16931-UBL-validation.xslt").write_text("<x/>", encoding="utf-8")
    with pytest.raises(ArtefactCorruptError, match=r"EN16931-UBL-validation\.xslt has 4 bytes"):
        artefacts.path("en16931-1.3.16", "EN16931-UBL-validation.xslt", Settings(rules_dir=rules_dir))


def test_verify_accepts_a_good_install(installed: Path) -> None:
    assert artefacts.verify(settings=Settings(rules_dir=installed)) == list(SET_IDS)
    assert artefacts.verify("ubl-2.1", rules_dir=installed) == ["ubl-2.1"]
    assert artefacts.check_installed(Settings(rules_dir=installed)) == "ok"


def test_verify_names_a_file_changed_in_place(tmp_path: Path, installed: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(installed, rules_dir)
    target = rules_dir / "peppol-bis3-2026.5" / "PEPPOL-EN16931-UBL.xslt"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0x01  # same size, different content
    target.write_bytes(bytes(data))
    with pytest.raises(ArtefactCorruptError, match=r"PEPPOL-EN16931-UBL\.xslt does not have the sha256"):
        artefacts.verify(rules_dir=rules_dir)
    states = {s.artefact_set.id: s for s in artefacts.status(rules_dir=rules_dir)}
    assert states["peppol-bis3-2026.5"].installed is True
    assert states["peppol-bis3-2026.5"].verified is False
    assert states["ubl-2.1"].verified is True


def test_status_of_an_empty_rules_dir(tmp_path: Path) -> None:
    states = artefacts.status(rules_dir=tmp_path)
    assert [s.installed for s in states] == [False] * len(SET_IDS)
    assert all(s.problem and "not installed" in s.problem for s in states)
    assert "not installed" in artefacts.check_installed(Settings(rules_dir=tmp_path))


# --- install -------------------------------------------------------------------------------------


def test_install_from_a_directory_then_again_is_a_no_op(tmp_path: Path, rules_source: Path) -> None:
    settings = Settings(rules_dir=tmp_path / "rules")
    first = artefacts.install(rules_source, settings)
    assert first.installed == SET_IDS
    assert first.already is False
    assert artefacts.verify(settings=settings) == list(SET_IDS)
    again = artefacts.install(rules_source, settings)
    assert again.already is True
    assert again.installed == ()
    assert sorted(p.name for p in settings.rules_dir.iterdir()) == sorted(SET_IDS)  # no staging left


def test_install_from_a_zip_archive(tmp_path: Path, rules_source: Path) -> None:
    archive = _zip_dir(rules_source, tmp_path / "rules.zip")
    settings = Settings(rules_dir=tmp_path / "rules")
    result = artefacts.install(archive, settings)
    assert result.installed == SET_IDS
    assert str(archive) in result.source
    assert artefacts.verify(settings=settings) == list(SET_IDS)


def test_install_uses_the_rules_source_setting(tmp_path: Path, rules_source: Path) -> None:
    archive = _zip_dir(rules_source, tmp_path / "configured.zip", top="")
    settings = Settings(rules_dir=tmp_path / "rules", rules_source=str(archive))
    assert str(archive) in artefacts.install(None, settings).source


def test_install_falls_back_to_the_shared_rules(
    tmp_path: Path, rules_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artefacts, "DEFAULT_SHARED_RULES", rules_source)
    result = artefacts.install(None, Settings(rules_dir=tmp_path / "rules"))
    assert result.source == str(rules_source)


def test_install_replaces_a_corrupt_install(tmp_path: Path, installed: Path, rules_source: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(installed, rules_dir)
    (rules_dir / "ubl-2.1" / "xsd" / "maindoc" / "UBL-Invoice-2.1.xsd").write_bytes(b"broken")
    (rules_dir / "ubl-2.1" / "stray.txt").write_text("left over", encoding="utf-8")
    result = artefacts.install(rules_source, Settings(rules_dir=rules_dir))
    assert result.already is False
    assert artefacts.verify(rules_dir=rules_dir) == list(SET_IDS)
    assert not (rules_dir / "ubl-2.1" / "stray.txt").exists()


def test_a_bad_source_leaves_the_previous_install_intact(tmp_path: Path, installed: Path, rules_source: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(installed, rules_dir)
    before = {p: p.read_bytes() for p in rules_dir.rglob("*") if p.is_file()}
    bad_source = tmp_path / "bad"
    shutil.copytree(rules_source, bad_source)
    (bad_source / "peppol-bis3-2026.5" / "PEPPOL-EN16931-UBL.xslt").write_bytes(b"<tampered/>")
    with pytest.raises(ArtefactCorruptError, match=r"PEPPOL-EN16931-UBL\.xslt does not match the manifest"):
        artefacts.install(bad_source, Settings(rules_dir=rules_dir), force=True)
    after = {p: p.read_bytes() for p in rules_dir.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in rules_dir.iterdir()) == sorted(SET_IDS)


def test_a_source_missing_a_file_is_refused(tmp_path: Path, rules_source: Path) -> None:
    source = tmp_path / "partial"
    shutil.copytree(rules_source, source)
    (source / "en16931-1.3.16" / "EN16931-UBL-validation.xslt").unlink()
    with pytest.raises(ArtefactMissingError, match=r"EN16931-UBL-validation\.xslt"):
        artefacts.install(source, Settings(rules_dir=tmp_path / "rules"))
    assert not (tmp_path / "rules" / "ubl-2.1").exists()


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil.txt", "rules/../../x.txt", "C:/x.txt"])
def test_zip_with_unsafe_member_paths_is_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rules/ubl-2.1/xsd/x.xsd", "x")
        zf.writestr(zipfile.ZipInfo(member), "pwned")
    with pytest.raises(ArtefactError, match="unsafe member path"):
        artefacts.install(archive, Settings(rules_dir=tmp_path / "rules"))
    assert not (tmp_path / "escape.txt").exists()


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "rules.zip"
    archive.write_bytes(b"not a zip")
    with pytest.raises(ArtefactError, match="not a readable zip archive"):
        artefacts.install(archive, Settings(rules_dir=tmp_path / "rules"))


def test_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtefactMissingError, match="artefact source not found"):
        artefacts.install(tmp_path / "nowhere", Settings(rules_dir=tmp_path / "rules"))


# --- official download (urllib replaced by a fake that serves a built zip) -------------------------


def _small_manifest(content: bytes) -> artefacts.Manifest:
    raw = {
        "sets": [
            {
                "id": "demo-1.0",
                "family": "en16931",
                "title": "demo",
                "version": "1.0",
                "in_force_from": "2020-01-01",
                "in_force_until": None,
                "source": {
                    "url": "https://example.org/demo-1.0.zip",
                    "archive_prefix": "",
                    "path_map": {"rules.xslt": "xslt/rules.xslt"},
                },
                "files": [{"path": "rules.xslt", "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}],
            }
        ]
    }
    return artefacts.parse_manifest(raw)


class _Response(io.BytesIO):
    def __enter__(self) -> _Response:
        return self


def test_download_extracts_with_the_official_archive_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"<xsl:stylesheet/>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("demo-1.0/xslt/rules.xslt", content)
    requested: list[tuple[str, float]] = []

    def fake_urlopen(url: str, timeout: float) -> _Response:
        requested.append((url, timeout))
        return _Response(buffer.getvalue())

    monkeypatch.setattr(artefacts, "DEFAULT_SHARED_RULES", tmp_path / "no-shared")
    monkeypatch.setattr(artefacts.urllib.request, "urlopen", fake_urlopen)
    manifest = _small_manifest(content)
    result = artefacts.install(None, Settings(rules_dir=tmp_path / "rules"), manifest=manifest)
    assert requested == [("https://example.org/demo-1.0.zip", artefacts.DOWNLOAD_TIMEOUT_SECONDS)]
    assert result.installed == ("demo-1.0",)
    assert (tmp_path / "rules" / "demo-1.0" / "rules.xslt").read_bytes() == content


def test_download_failure_is_one_line_and_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_urlopen(url: str, timeout: float) -> _Response:
        raise OSError("connection refused")

    monkeypatch.setattr(artefacts, "DEFAULT_SHARED_RULES", tmp_path / "no-shared")
    monkeypatch.setattr(artefacts.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(ArtefactError, match=r"cannot download https://example.org/demo-1.0.zip: connection refused"):
        artefacts.install(None, Settings(rules_dir=tmp_path / "rules"), manifest=_small_manifest(b"x"))
    assert list((tmp_path / "rules").iterdir()) == []


def test_source_can_be_an_https_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"<xsl:stylesheet/>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("mirror/demo-1.0/rules.xslt", content)
    monkeypatch.setattr(artefacts.urllib.request, "urlopen", lambda url, timeout: _Response(buffer.getvalue()))
    settings = Settings(rules_dir=tmp_path / "rules", rules_source="https://mirror.example.org/rules.zip")
    result = artefacts.install(None, settings, manifest=_small_manifest(content))
    assert result.source == "https://mirror.example.org/rules.zip"
    assert (tmp_path / "rules" / "demo-1.0" / "rules.xslt").read_bytes() == content


def test_plain_http_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="non-https"):
        artefacts.install("http://mirror.example.org/rules.zip", Settings(rules_dir=tmp_path / "rules"), force=True)


def test_no_download_starts_when_one_set_has_no_official_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(artefacts, "DEFAULT_SHARED_RULES", tmp_path / "no-shared")
    monkeypatch.setattr(artefacts.urllib.request, "urlopen", lambda url, timeout: calls.append(url))
    with pytest.raises(ArtefactError, match=r"no official download for 'peppol-bis3-2026\.5'"):
        artefacts.install(None, Settings(rules_dir=tmp_path / "rules"))
    assert calls == []


def test_set_without_official_download_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artefacts, "DEFAULT_SHARED_RULES", tmp_path / "no-shared")
    peppol_only = artefacts.Manifest((artefacts.load_manifest().get("peppol-bis3-2026.5"),))
    with pytest.raises(ArtefactError, match=r"no official download for 'peppol-bis3-2026.5': install with --from"):
        artefacts.install(None, Settings(rules_dir=tmp_path / "rules"), manifest=peppol_only)


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _app():  # type: ignore[no-untyped-def]
    from einvoice.cli import app

    return app


def test_cli_install_list_verify(tmp_path: Path, rules_source: Path, runner: CliRunner) -> None:
    rules_dir = tmp_path / "rules"
    result = runner.invoke(_app(), ["rules", "install", "--from", str(rules_source), "--rules-dir", str(rules_dir)])
    assert result.exit_code == 0, result.output
    assert "installed ubl-2.1, en16931-1.3.16, peppol-bis3-2026.5, peppol-poacc-2026.5 into" in result.output

    result = runner.invoke(_app(), ["rules", "install", "--from", str(rules_source), "--rules-dir", str(rules_dir)])
    assert result.exit_code == 0
    assert "already installed and verified" in result.output

    result = runner.invoke(_app(), ["rules", "list", "--rules-dir", str(rules_dir), "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert [s["id"] for s in listed["sets"]] == list(SET_IDS)
    assert all(s["installed"] and s["verified"] for s in listed["sets"])
    assert listed["sets"][2]["in_force_from"] == "2026-08-24"

    result = runner.invoke(_app(), ["rules", "list", "--rules-dir", str(rules_dir)])
    assert result.exit_code == 0
    assert "peppol-bis3-2026.5" in result.output

    result = runner.invoke(_app(), ["rules", "verify", "--rules-dir", str(rules_dir)])
    assert result.exit_code == 0
    assert "verified ubl-2.1, en16931-1.3.16, peppol-bis3-2026.5, peppol-poacc-2026.5 in" in result.output


def test_cli_verify_of_a_corrupt_file_exits_2_with_one_line(tmp_path: Path, installed: Path, runner: CliRunner) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(installed, rules_dir)
    (rules_dir / "en16931-1.3.16" / "EN16931-UBL-validation.xslt").write_bytes(b"x")
    result = runner.invoke(_app(), ["rules", "verify", "--rules-dir", str(rules_dir)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: artefact corrupt: ")
    assert "EN16931-UBL-validation.xslt" in lines[0]


def test_cli_verify_of_nothing_installed_exits_2(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(_app(), ["rules", "verify", "--rules-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not installed" in result.stderr
    assert "einvoice rules install" in result.stderr


def test_cli_install_from_a_bad_zip_exits_2(tmp_path: Path, runner: CliRunner) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    result = runner.invoke(_app(), ["rules", "install", "--from", str(archive), "--rules-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "unsafe member path" in result.stderr
    assert "Traceback" not in result.output


def test_cli_list_of_an_empty_rules_dir(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(_app(), ["rules", "list", "--rules-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0
    assert not any(s["installed"] for s in json.loads(result.output)["sets"])


def test_cli_manifest_check_is_up_to_date(rules_source: Path, runner: CliRunner) -> None:
    result = runner.invoke(_app(), ["rules", "manifest", "--from", str(rules_source), "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
