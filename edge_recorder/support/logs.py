"""Structured logging: one line per event with key=value fields, journald-native under systemd.

Every record passes a redaction filter before any handler sees it, so a careless call site
cannot leak a bearer token, a secret, audio bytes or patient context into the journal.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

REDACTED = "[redacted]"

# Field names whose values are never logged as given (matched as whole words of the key).
_SENSITIVE_KEY = re.compile(
    r"(^|_)(token|access_token|refresh_token|secret|password|passwd|authorization|auth_header|"
    r"bearer|credential|credentials|cookie|key|private_key|audio|pcm|samples|payload|data|"
    r"patient|context|ehr_context|mrn|transcript|note)($|_)",
    re.IGNORECASE,
)
# Token shapes inside free text: JWTs, "Bearer ..." headers, basic auth in URLs.
_TEXT_PATTERNS = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(r"(?i)(client_secret|password|access_token|refresh_token)=[^&\s]+"),
        r"\1=" + REDACTED,
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact_text(text: str) -> str:
    """Replace anything that looks like a credential inside free text."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Suffixes that mark a field as metadata about a thing (a size, a path), not the thing itself.
_METADATA_SUFFIXES = ("_file", "_dir", "_path", "_bytes", "_count", "_len", "_s", "_ms", "_id")


def redact_value(key: str, value: Any) -> Any:
    """The loggable form of a field: sensitive keys hidden, bytes reduced to their length."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if _SENSITIVE_KEY.search(key) and not key.lower().endswith(_METADATA_SUFFIXES):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactionFilter(logging.Filter):
    """Scrubs message text, arguments and fields in place before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        record.msg = redact_text(str(record.msg))
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields:
            record.fields = {k: redact_value(k, v) for k, v in fields.items()}
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=x msg="..." k=v` — grep- and parser-friendly."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name.removeprefix('edge_recorder.')}",
            f"msg={_logfmt_value(record.getMessage())}",
        ]
        fields: Mapping[str, Any] = getattr(record, "fields", None) or {}
        parts.extend(f"{key}={_logfmt_value(value)}" for key, value in fields.items())
        if record.exc_text:
            parts.append(f"exc={_logfmt_value(record.exc_text)}")
        return " ".join(parts)


_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def journal_fields(record: logging.LogRecord) -> dict[str, str]:
    """The journald fields for a record: MESSAGE, PRIORITY and one upper-case field per key."""
    fields: Mapping[str, Any] = getattr(record, "fields", None) or {}
    out = {
        "MESSAGE": record.getMessage(),
        "PRIORITY": str(_PRIORITY.get(record.levelno, 6 if record.levelno < 30 else 2)),
        "SYSLOG_IDENTIFIER": "edge-recorder",
        "LOGGER": record.name,
    }
    for key, value in fields.items():
        name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
        if name and name not in out:
            out[f"ER_{name}"] = str(value)
    if record.exc_text:
        out["EXCEPTION_TEXT"] = record.exc_text
    return out


class JournalHandler(logging.Handler):
    """Sends records to journald with structured fields (systemd-python's journal.send)."""

    def __init__(self, send: Callable[..., Any] | None = None) -> None:
        super().__init__()
        if send is None:
            import importlib

            send = importlib.import_module("systemd.journal").send
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = journal_fields(record)
            message = fields.pop("MESSAGE")
            self._send(message, **fields)
        except Exception:  # logging must never take the daemon down
            self.handleError(record)


class EventLogger(logging.LoggerAdapter[logging.Logger]):
    """`log.info("recording closed", recording=3, bytes=1200)`: keyword args become fields."""

    _PASSTHROUGH = frozenset({"exc_info", "stack_info", "stacklevel", "extra"})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in self._PASSTHROUGH}
        extra = dict(kwargs.pop("extra", None) or {})
        extra["fields"] = {**extra.get("fields", {}), **fields}
        kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> EventLogger:
    """A structured logger for module `name`."""
    return EventLogger(logging.getLogger(name), {})


def setup_logging(
    level: str = "INFO",
    fmt: str = "auto",
    stream: Any = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Install one handler on the package logger; journald when running under systemd."""
    env = os.environ if environ is None else environ
    use_journal = fmt == "journal" or (fmt == "auto" and bool(env.get("JOURNAL_STREAM")))
    handler: logging.Handler
    if use_journal:
        try:
            handler = JournalHandler()
        except ImportError:
            handler = logging.StreamHandler(stream or sys.stderr)
            handler.setFormatter(LogfmtFormatter())
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(LogfmtFormatter())
    handler.addFilter(RedactionFilter())
    root = logging.getLogger("edge_recorder")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
