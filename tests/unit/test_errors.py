"""The error tree: every error class of the package in ``einvoice.errors``, fields set by the
constructor, importable from where the classes were first defined, and intact across processes."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from einvoice import errors
from einvoice.domain.findings import Finding, Layer, Severity

PACKAGE = Path(errors.__file__).resolve().parent


def _exception_bases(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        if name.endswith(("Error", "Exception")):
            names.append(name)
    return names


def test_no_error_class_is_defined_outside_errors_py() -> None:
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and _exception_bases(node):
                strays.append(f"{path.relative_to(PACKAGE)}: {node.name}({', '.join(_exception_bases(node))})")
    assert strays == []


def test_every_class_has_the_one_root() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, BaseException)]
    assert classes
    assert all(issubclass(c, errors.EInvoiceError) for c in classes)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("einvoice.services.intake", "UnknownBuyerError"),
        ("einvoice.services.intake", "SellerMismatchError"),
        ("einvoice.services.intake", "IdempotencyConflictError"),
        ("einvoice.services.accounts", "AccountError"),
        ("einvoice.services.accounts", "InvalidEndpointError"),
        ("einvoice.services.accounts", "InvalidIdentifierError"),
        ("einvoice.services.accounts", "DuplicateAccountError"),
        ("einvoice.parsers.ubl", "UblParseError"),
        ("einvoice.validation.rulesets", "RuleSetError"),
        ("einvoice.cli.validate", "InputError"),
        ("einvoice.domain.money", "DecimalSyntaxError"),
        ("einvoice.benchmarks.pipeline", "HttpProtocolError"),
        ("einvoice.benchmarks.pipeline", "ServerClosedError"),
    ],
)
def test_old_import_paths_give_the_same_class(module: str, name: str) -> None:
    import importlib

    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_fields_are_set_by_the_constructor_and_survive_pickling() -> None:
    finding = Finding("INTAKE-UNKNOWN-BUYER", Severity.FATAL, Layer.INTAKE, "unknown buyer")
    cases: list[tuple[errors.EInvoiceError, dict[str, object]]] = [
        (
            errors.UnknownBuyerError("unknown buyer 0192:1", document_id="d1", findings=[finding], line=7),
            {"document_id": "d1", "findings": (finding,), "line": 7},
        ),
        (errors.NotWellFormedError("bad"), {"document_id": None, "findings": (), "line": None}),
        (errors.SellerMismatchError("the seller's VAT id"), {"reason": "the seller's VAT id"}),
        (
            errors.ConflictError("moved on", document_id="d2", status="received"),
            {"document_id": "d2", "status": "received"},
        ),
        (
            errors.UblParseError("PayableAmount: not a number", element="PayableAmount", line=40),
            {"element": "PayableAmount", "line": 40},
        ),
    ]
    for exc, fields in cases:
        for copy in (exc, pickle.loads(pickle.dumps(exc))):
            assert type(copy) is type(exc)
            assert str(copy) == str(exc)
            assert {name: getattr(copy, name) for name in fields} == fields


def test_errors_that_are_also_builtin_errors() -> None:
    assert issubclass(errors.DecimalSyntaxError, ValueError)
    assert issubclass(errors.InvalidEndpointError, ValueError)
    assert issubclass(errors.ServerClosedError, ConnectionError)
    assert not issubclass(errors.ConflictError, errors.PermanentError)  # a worker would record `dead`
