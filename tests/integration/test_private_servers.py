"""The private servers the fault drills start: a test run killed before its finalizers ran leaves
its servers behind, and the next run stops them and removes their directories, while the servers
of runs still going are left alone; without the servers' programs the drills fail in CI."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests import conftest
from tests.conftest import REPO_ROOT
from tests.integration import private_servers
from tests.integration.private_servers import _alive, private_postgres, private_rabbitmq, remove_stale_directories

_START_AND_HANG = """
import time
from tests.integration.private_servers import private_postgres
context = private_postgres()  # kept: collected, it would stop the server
server = context.__enter__()
print(server.directory, server.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.postgres
def test_servers_left_by_a_killed_run_are_stopped_and_removed() -> None:
    with private_postgres() as ours:
        run = subprocess.Popen(
            [sys.executable, "-c", _START_AND_HANG], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            assert run.stdout is not None
            directory, pid = run.stdout.readline().split()
        finally:
            run.send_signal(signal.SIGKILL)  # no finalizer runs
            run.wait(30)
        left = Path(directory)
        assert left.is_dir()
        assert _alive(int(pid))

        removed = remove_stale_directories()

        assert left in removed
        assert not left.exists()
        assert not _alive(int(pid))
        # This run's own server is still there and serving.
        assert ours.directory.is_dir()
        assert ours.directory not in removed
        with psycopg.connect(ours.url.replace("+psycopg", "")) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    assert not ours.directory.exists()
    assert ours.pid is None or not _alive(ours.pid)


@pytest.mark.parametrize(
    ("in_ci", "outcome"), [(True, pytest.fail.Exception), (False, pytest.skip.Exception)], ids=["CI", "elsewhere"]
)
def test_missing_programs_fail_in_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, in_ci: bool, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(conftest, "IN_CI", in_ci)
    monkeypatch.setattr(private_servers, "postgres_bindir", lambda: None)
    monkeypatch.setattr(private_servers, "rabbitmq_scripts", lambda: None)
    with pytest.raises(outcome, match="initdb and pg_ctl were not found"), private_postgres():
        pass
    with pytest.raises(outcome, match="rabbitmq-server and rabbitmqctl were not found"), private_rabbitmq():
        pass
