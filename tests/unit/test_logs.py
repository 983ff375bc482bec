import json
import logging

import pytest

from einvoice import logs


def test_json_lines_carry_message_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", json_lines=True)
    logging.getLogger("einvoice.test").info("stage done", extra={"document_id": "d1", "stage": "validate"})
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "stage done"
    assert entry["level"] == "info"
    assert entry["logger"] == "einvoice.test"
    assert entry["document_id"] == "d1"
    assert entry["stage"] == "validate"


def test_text_lines_append_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("DEBUG", json_lines=False)
    logging.getLogger("einvoice.test").warning("retrying", extra={"attempt": 2})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING" in line
    assert "retrying" in line
    assert line.endswith("attempt=2")
