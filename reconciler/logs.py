"""Logging set-up: plain text for people, or one JSON object per line for log pipelines.

Lines about a rollout carry `group`, `decision`, `reason` and the fleet-repo `revision` as
fields (the service passes them as `extra`), so a log search by revision finds everything
a commit caused.

Logs carry text others wrote (host names, agents' error messages, fleet-repo content), so
both formats are safe to read: in text, control characters are escaped (a newline in a
host's error cannot forge a line of its own) and a traceback is indented under its line;
in both, credentials in URLs and every registered secret are replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

#: ``scheme://user:password@host`` (or ``scheme://token@host``): what stands before the @.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

#: Secrets shorter than this are not registered: replacing "1" everywhere would hide the log.
_SHORTEST_SECRET = 6


def register_secret(value: str | None) -> None:
    """Never write ``value`` to a log (a token, a webhook secret, a password)."""
    if value is not None and len(value.strip()) >= _SHORTEST_SECRET:
        with _secrets_lock:
            _secrets.add(value.strip())


def redact(text: str) -> str:
    """``text`` with URL credentials and registered secrets replaced by ``***``."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def escape_controls(text: str) -> str:
    """Newlines, tabs and other control characters as visible escapes (``\\n``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(
            {**vars(record), "msg": escape_controls(record.getMessage()), "args": None}
        )
        safe.exc_info = safe.exc_text = None  # the traceback goes below, indented
        line = super().format(safe)
        extra = {k: v for k, v in _fields(record).items() if v is not None}
        if extra:
            line += "  " + " ".join(f"{k}={escape_controls(str(v))}" for k, v in extra.items())
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n    | {row}" for row in trace.splitlines())
        return redact(line)


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
