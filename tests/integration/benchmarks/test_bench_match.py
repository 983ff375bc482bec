"""``einvoice bench match`` on PostgreSQL, small: it loads a register of its own, matches the
invoices it generates through the stages (every one approved against the order it names), prints
the figures, drops its database, and keeps one for ``--reuse`` when asked."""

from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from einvoice.cli import app

pytestmark = pytest.mark.postgres


def databases(postgres_url: str) -> set[str]:
    admin = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'einvoice_bench_match_%'")
        return {name for (name,) in rows}


def bench(postgres_url: str, *args: str) -> dict:  # type: ignore[type-arg]
    small = ["--commitments", "40", "--lines", "3", "--suppliers", "4", "--invoices", "12", "--warmup", "2"]
    result = CliRunner().invoke(app, ["bench", "match", "--database-url", postgres_url, *small, *args, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return figures


def test_the_bench_matches_its_invoices_against_the_register_it_loaded_and_drops_it(postgres_url: str) -> None:
    before = databases(postgres_url)
    figures = bench(postgres_url)
    assert figures["register"] == {"commitments": 40, "lines": 3, "suppliers": 4}
    assert figures["outcomes"] == {"approved": 24}  # every invoice matched: half in the finish, half alone
    for way in ("in_finish", "without", "alone"):
        assert figures[way]["engine_cpu"] > 0
        assert figures[way]["database_cpu"] is not None  # the server runs on this machine
        assert 0 < figures[way]["p50"] <= figures[way]["p99"] <= figures[way]["max"]
    assert databases(postgres_url) == before


def test_a_kept_register_is_matched_against_again(postgres_url: str) -> None:
    before = databases(postgres_url)
    kept = bench(postgres_url, "--keep")["database"]
    try:
        assert kept in databases(postgres_url)
        again = bench(postgres_url, "--reuse", kept, "--seed", "2")
        assert (again["database"], again["register"]["commitments"]) == (kept, 40)
        assert again["outcomes"] == {"approved": 24}
    finally:
        admin = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{kept}" WITH (FORCE)')
    assert databases(postgres_url) == before
