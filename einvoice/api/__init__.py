"""HTTP API (FastAPI): the only place that chooses HTTP status codes."""

from __future__ import annotations

from einvoice.api.app import create_app

__all__ = ["create_app"]
