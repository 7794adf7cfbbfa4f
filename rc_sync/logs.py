"""Log output of the command line: human lines (rich on a terminal) or one JSON object per line.

Both formats carry the same fields (time, level, logger, message) and go through the same
redaction: the API token, in any form (rc_common.redact), never reaches a log line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime

from rich.console import Console

from rc_common.redact import redact

# One stderr console for progress bars and log lines, so log lines print above the bars.
STDERR = Console(stderr=True)

FORMATS = ("human", "json")
_SECRETS: list[str] = []
_SECRETS_GUARD = threading.Lock()
_STATE = {"format": "human"}


def add_secret(secret: str | None) -> None:
    """Redact `secret` (every form of it) from every later log line."""
    value = (secret or "").strip()
    if value:
        with _SECRETS_GUARD:
            if value not in _SECRETS:
                _SECRETS.append(value)


def scrub(text: str) -> str:
    """`text` with every registered secret redacted."""
    with _SECRETS_GUARD:
        secrets = list(_SECRETS)
    for secret in secrets:
        text = redact(text, secret)
    return text


def json_logs() -> bool:
    """True when log lines are JSON objects (--log-format json / RC_SYNC_LOG_FORMAT=json)."""
    return _STATE["format"] == "json"


class RedactFilter(logging.Filter):
    """Renders each record's message once and redacts the secrets in it (and in its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace msg/args by the redacted message; keep the record."""
        message = scrub(record.getMessage())
        record.msg, record.args = message, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None  # formatted (and redacted) above: never formatted again
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the fields of the human line, plus `exc` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def error_line(message: str, exit_status: int) -> str:
    """The final one-sentence error of a command as a JSON log line."""
    return json.dumps(
        {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "ERROR",
            "logger": "rc_sync.cli",
            "message": scrub(message),
            "exit_status": exit_status,
        },
        ensure_ascii=False,
    )


def setup_logging(verbose: int, log_format: str = "human") -> None:
    """Log lines on stderr: JSON objects, rich lines above the progress bars on a terminal, or
    plain lines elsewhere."""
    from rich.logging import RichHandler

    _STATE["format"] = log_format if log_format in FORMATS else "human"
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if json_logs():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        handler = RichHandler(console=STDERR, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL at INFO; our own lines say enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
