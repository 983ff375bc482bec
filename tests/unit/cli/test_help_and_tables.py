"""What a new user reads: ``--help`` texts and the tables of the list commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from einvoice.cli import app

runner = CliRunner()


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [path for path, _ in _commands()]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "einvoice")
def test_help_shows_no_type_after_flags_and_answers_to_dash_h(path: tuple[str, ...]) -> None:
    long = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    short = runner.invoke(app, [*path, "-h"], env={"COLUMNS": "120"})
    assert long.exit_code == 0, long.output
    assert short.exit_code == 0, short.output
    assert short.output == long.output
    assert "<bool>" not in long.output


def test_every_help_text_is_a_sentence() -> None:
    not_sentences = []
    for path, command in _commands():
        texts = [("", (command.help or "").strip().split("\n\n")[0])] if command.help else []
        texts += [(param.name, param.help) for param in command.params if getattr(param, "help", None)]
        for name, text in texts:
            text = " ".join(text.split())
            if not (text[0].isupper() and text.endswith(".")):
                not_sentences.append((" ".join(("einvoice", *path)), name, text))
    assert not_sentences == []


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EINVOICE_DATABASE_URL", "EINVOICE_BROKER_URL", "EINVOICE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EINVOICE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_lists_show_whole_identifiers_in_80_columns(data_dir: Path) -> None:
    added = runner.invoke(
        app,
        [
            *("suppliers", "add", "--name", "Seller Ltd, a name long enough to need wrapping", "--unchecked"),
            *("--endpoint", "0088:9482348239847239874", "--vat", "GB1232434", "--legal-id", "GB-LEGAL-0012345678"),
        ],
    )
    assert added.exit_code == 0, added.output
    runner.invoke(app, ["institutions", "add", "--name", "Buyer AB", "--endpoint", "0002:FR23342", "--unchecked"])
    supplier = json.loads(runner.invoke(app, ["suppliers", "list", "--json"]).stdout)[0]
    institution = json.loads(runner.invoke(app, ["institutions", "list", "--json"]).stdout)[0]

    suppliers = runner.invoke(app, ["suppliers", "list"], env={"COLUMNS": "80"}).stdout
    for identifier in (supplier["id"], "0088:9482348239847239874", "GB1232434", "GB-LEGAL-0012345678"):
        assert identifier in suppliers
    assert "…" not in suppliers
    institutions = runner.invoke(app, ["institutions", "list"], env={"COLUMNS": "80"}).stdout
    assert institution["id"] in institutions
    assert "0002:FR23342" in institutions
    assert max(len(line) for line in institutions.splitlines()) <= 80


def test_config_shows_whole_variable_names_in_80_columns(data_dir: Path) -> None:
    from einvoice.settings import Settings

    shown = runner.invoke(app, ["config"], env={"COLUMNS": "80"}).stdout
    for name in Settings.model_fields:
        assert f"EINVOICE_{name.upper()}" in shown
