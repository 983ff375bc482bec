"""Logging set-up for operators: one line per event, plain or JSON (``EINVOICE_LOG_JSON=true``).

Loggers are named after modules (``einvoice.worker``, ``einvoice.api``…). Extra context passed as
``logger.info("…", extra={"document_id": …})`` appears as fields in JSON and as ``key=value`` in text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # color_message: uvicorn's ANSI copy of the message
)
# Libraries that log routine events at INFO (alembic's plugin set-up, pika's connection closes).
_QUIET_LIBRARIES = ("alembic", "pika")


_QUOTED = re.compile(r"""("|'|«|“)[^"'«»“”\n]{0,2000}?("|'|»|”)""")


def redact(text: str) -> str:
    """``text`` with every quoted value cut out (``"…"``): engine and library errors quote the
    value they could not use (``Cannot convert string "1,00" to xs:decimal``), and a document's
    content stays out of logs and of the reasons people read. The field and the location, which
    such messages also name, are what an operator needs."""
    return _QUOTED.sub(lambda m: f"{m.group(1)}…{m.group(2)}", text)


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Send the engine's logs to stderr in the chosen format. Safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
