"""Log lines for machines and people: LOG_FORMAT=json (one object per line) or text.

Every line written while a task runs carries ``task_id``, ``task_name``, ``job_id``, ``attempt`` and, where
the payload names one, ``tenant``; every line written while the API answers a request carries its
``request_id``; with tracing on, both carry ``trace_id`` and ``span_id``. The fields come from context
variables set by the Celery hooks and the HTTP middleware, so no call site passes them.

Nothing personal or secret is written: payloads are never logged by these hooks, the uvicorn access log
(client address) is replaced by a request line without address or user agent, and a last filter masks IP
addresses other than loopback, credentials inside URLs and bearer tokens in whatever a library logs.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

CONTEXT_FIELDS = ("task_id", "task_name", "job_id", "attempt", "tenant", "request_id")
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("geminivideo_log_context", default=_EMPTY)

TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s%(context_suffix)s"

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Candidates only: ``ipaddress`` decides, so clock times such as 12:30:45 stay.
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEEP_IPV4 = ("127.", "0.0.0.0")


def _mask_ipv4(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if text.startswith(_KEEP_IPV4) else "[ip]"


def scrub(text: str) -> str:
    """``text`` without IP addresses (loopback kept: it names no one), URL credentials or bearer tokens."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>[credentials]@", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _IPV4.sub(_mask_ipv4, text)
    return _IPV6.sub(_mask_ipv6, text)


def _mask_ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return text if address.is_loopback or address.is_unspecified else "[ip]"


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block (this thread or task only)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Like ``log_context`` for code that cannot wrap a block (Celery's prerun/postrun signals)."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # set in another context (a signal sent from another thread): start clean
        _context.set(_EMPTY)


def current_context() -> Mapping[str, Any]:
    return _context.get()


def _trace_fields() -> dict[str, str]:
    from geminivideo.telemetry import tracing  # cheap: reads the current span only when tracing is on

    return tracing.current_ids()


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record and scrubs its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {**current_context(), **_trace_fields()}
        # Celery's task logger already knows the task: keep its fields when the context has none.
        for name in ("task_id", "task_name"):
            value = getattr(record, name, None)
            if name not in fields and value not in (None, "???"):
                fields[name] = value
        record.gv_fields = fields
        record.context_suffix = "".join(f" {k}={v}" for k, v in fields.items() if k in CONTEXT_FIELDS[:2]) \
            if fields else ""
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
            "pid": record.process,
        }
        line.update(getattr(record, "gv_fields", {}))
        if record.exc_info:
            line["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def handler(log_format: str) -> logging.Handler:
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    stream.addFilter(ContextFilter())
    return stream


def configure(log_format: str, level: int = logging.INFO, *, force: bool = False) -> None:
    """Route every logger to one handler in ``log_format`` (API, scripts; workers and beats via ``take_over``).

    A root logger that already has handlers (a test runner's, an embedding application's) is left alone
    unless ``force``; uvicorn configures only its own loggers, so a served API always gets ours.
    """
    root = logging.getLogger()
    if force or not root.handlers:
        root.handlers = [handler(log_format)]
        root.setLevel(level)
    quiet_access_log()


def take_over(logger: logging.Logger, log_format: str) -> None:
    """Give a logger Celery set up (root, ``celery.task``) our handler instead of Celery's."""
    logger.handlers = [handler(log_format)]


def quiet_access_log() -> None:
    """uvicorn's access log names the client address: the API middleware logs requests without it."""
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def configure_for_script(level: int = logging.WARNING) -> None:
    """LOG_FORMAT for a command-line tool's own log lines (its output to people stays as it is)."""
    from geminivideo.config import get_settings
    from geminivideo.errors import ConfigError

    try:
        log_format = get_settings().log_format
    except ConfigError:
        return  # the command reports the bad setting itself, in its own words
    configure(log_format, level)
