"""Conformance fixtures: one engine per test session, reading the official artefacts from ../shared/rules.

The installed layout of ``ubl_schemas/`` equals ``../shared/rules``, so pointing ``rules_dir`` there
proves the engine against exactly the released artefacts, whether or not they are installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from einvoice.settings import Settings
from einvoice.validation.engine import Validator


@pytest.fixture(scope="session")
def rules_dir(shared_dir: Path) -> Path:
    return shared_dir / "rules"


@pytest.fixture(scope="session")
def validator(rules_dir: Path) -> Validator:
    return Validator(Settings(rules_dir=rules_dir))
