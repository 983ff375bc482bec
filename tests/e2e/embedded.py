"""An embedded runtime for a test module: its own data folder, the background work started."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from einvoice.settings import Settings


@contextmanager
def embedded_runtime(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, background: bool = True, **settings: Any
) -> Iterator[Any]:
    """A runtime built from ``settings`` in a fresh data folder; stopped when the block ends."""
    from einvoice.bootstrap import build

    runtime = build(Settings(data_dir=tmp_path_factory.mktemp(name), **settings))
    if background:
        runtime.start_background()
    try:
        yield runtime
    finally:
        runtime.stop()
