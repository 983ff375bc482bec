"""The README's "Try it" walk-through, read from the README itself and run as written against a
served engine: register the institution and the supplier (``--unchecked``: the sample's made-up
identifiers), submit the corpus sample with curl, show the document. A README edit that breaks it
fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.serving import free_port

pytestmark = pytest.mark.slow

PLACEHOLDER = "<id from the answer>"


def walkthrough_commands(readme: str) -> list[str]:
    """The commands of the first ``sh`` block after "Try it", continuation lines joined, comments
    after the command dropped."""
    after = readme.split("Try it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert block is not None, "the README has no sh block after 'Try it'"
    text = block[1].replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = re.sub(r"\s{2,}#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(" ".join(line.split()))
    return commands


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    assert shutil.which("curl"), "the walk-through uses curl"
    commands = walkthrough_commands((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 4, commands
    assert "--unchecked" in commands[0]
    assert "--unchecked" in commands[1]
    assert commands[3].endswith(PLACEHOLDER)

    port = free_port()
    # As written, but on a free port, with this interpreter's einvoice and the shared folder found.
    bin_dir = str(Path(sys.executable).parent)

    def as_run(command: str) -> str:
        command = command.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        command = command.replace(".venv/bin/einvoice", f"{bin_dir}/einvoice")
        return command.replace("../shared/", f"{SHARED_DIR}/")

    env = {k: v for k, v in os.environ.items() if not k.startswith("EINVOICE_")}
    env |= {"EINVOICE_DATA_DIR": str(tmp_path / "data"), "EINVOICE_RULES_DIR": str(SHARED_DIR / "rules")}
    server = subprocess.Popen(
        [sys.executable, "-m", "einvoice", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "einvoice serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /healthz within 60 s"
            time.sleep(0.2)

        script = "set -euo pipefail\n" + "\n".join(as_run(c) for c in commands[:3]) + "\n"
        submitted = subprocess.run(
            ["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert submitted.returncode == 0, submitted.stderr
        answer = json.loads(submitted.stdout.strip().splitlines()[-1])
        assert answer["status"] == "received", answer

        show = as_run(commands[3]).replace(PLACEHOLDER, answer["id"])
        shown = subprocess.run(["bash", "-c", show], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert document["id"] == answer["id"]
        assert document["sha256"] == answer["sha256"]
        assert document["history"][0]["to_status"] == "received"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
