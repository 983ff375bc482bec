"""The CLI finds the same data directory from any current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_the_cli_run_from_another_folder_uses_the_checkouts_data_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_")}
    shown = subprocess.run(
        [sys.executable, "-m", "einvoice", "config", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    settings = {row["name"]: row["value"] for row in json.loads(shown.stdout)}
    assert settings["data_dir"] == str(REPO_ROOT / "var")
    assert settings["database_url"] == f"sqlite:///{REPO_ROOT / 'var' / 'einvoice.db'}"
    assert not (tmp_path / "var").exists()
