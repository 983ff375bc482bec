"""Validation of UBL invoices and credit notes: UBL 2.1 XSD, EN 16931 and Peppol BIS 3 Schematron.

    from einvoice.validation import validate
    report = validate(Path("invoice.xml"))
    report.valid, report.verdict, report.findings, report.to_dict()

``validate`` uses one ``Validator`` per process, created on first use (nothing is compiled at
import time). It is thread-safe: calls from several threads are serialised around saxonche, which
must not be shared concurrently. For parallel throughput use processes (``einvoice validate
--jobs N``), each with its own ``Validator``. Build a ``Validator`` yourself for explicit lifetime
or other settings.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from einvoice.validation.report import ValidationReport, Verdict

if TYPE_CHECKING:
    from einvoice.validation.engine import Validator

__all__ = ["ValidationReport", "Validator", "Verdict", "default_validator", "validate"]

_default: Validator | None = None
_default_lock = threading.Lock()


def default_validator() -> Validator:
    """The process's shared ``Validator`` (created on first call, with settings from the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            from einvoice.validation.engine import Validator

            _default = Validator()
        return _default


def validate(
    data: bytes | Path,
    *,
    rules: str = "auto",
    skip_xsd: bool = False,
    at: date | datetime | None = None,
    institution: str | None = None,
    svrl: bool = False,
) -> ValidationReport:
    """Validate one document (bytes, or a path to read) with the process's shared ``Validator``.

    Returns a ``ValidationReport``; its verdict is ``valid``, ``invalid``, ``unsupported`` or
    ``error`` (a layer could not run). Raises ``OSError`` when a path cannot be read and
    ``ValueError`` for an unknown ``rules`` value.
    """
    return default_validator().validate(data, rules=rules, skip_xsd=skip_xsd, at=at, institution=institution, svrl=svrl)


def __getattr__(name: str) -> object:
    # ``from einvoice.validation import Validator`` without importing lxml/saxonche wrappers eagerly.
    if name == "Validator":
        from einvoice.validation.engine import Validator

        return Validator
    raise AttributeError(name)
