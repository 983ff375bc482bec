"""Fixtures shared by every tier.

Servers: tests marked ``postgres`` or ``rabbitmq`` get the URL of a real server. When the server
is unreachable (or, for the fault drills, which start servers of their own, the server's programs
are missing) they are skipped on a developer's machine and FAIL when ``CI=true``: CI must never go
green by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("EINVOICE_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
CORPUS_DIR = SHARED_DIR / "corpus"

POSTGRES_URL = os.environ.get("EINVOICE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("EINVOICE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def unavailable(message: str) -> NoReturn:
    """A server or tool a test needs is missing: fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(message + " (CI=true: tests that need a server must not skip)", pytrace=False)
    pytest.skip(message)


def require_server(name: str, url: str, default_port: int) -> str:
    """Return ``url`` if the server answers; otherwise fail in CI, skip elsewhere."""
    if reachable(url, default_port):
        return url
    unavailable(f"{name} is not reachable at {url}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"shared directory not found at {SHARED_DIR} (set EINVOICE_SHARED_DIR)", pytrace=False)
    return SHARED_DIR


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    return shared_dir / "corpus"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_server("PostgreSQL", POSTGRES_URL, 5432)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return require_server("RabbitMQ", RABBITMQ_URL, 5672)
