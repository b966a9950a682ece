"""Log setup: one line per event, in text or JSON, with epoch/revision/key as fields.

Callers pass context through ``extra={"epoch": .., "revision": .., "key": ..}``; the formatters
render whichever are present. Values are never logged: decisions name keys, rules and reasons.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_CONTEXT_FIELDS = ("epoch", "revision", "key", "rule")


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"replicator.{name}")


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        ctx = " ".join(
            f"{name}={getattr(record, name)}"
            for name in _CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if ctx:
            line = f"{line}  [{ctx}]"
        if record.exc_info and record.levelno >= logging.ERROR:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(*, debug: bool = False, fmt: str = "text") -> None:
    """Configure the ``replicator`` logger tree once, at the CLI edge."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger("replicator")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
