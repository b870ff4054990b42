"""Credentials out of messages and logs: ``postgres://u:secret@h`` becomes ``postgres://u:***@h``.

Used by configuration errors and, through ``install()``, by every log record of the API and the workers, so
a connection error that quotes its URL does not write the password to a log file. Exception tracebacks are
formatted later, by handlers: ``MaskingFilter`` on a handler covers those where it is installed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# scheme://user:password@  (the user may be empty: redis://:password@host)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)(?P<password>[^@\s'\"]+)(?P<at>@)")
MASK = "***"


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)


def mask_value(value: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


class MaskingFilter(logging.Filter):
    """Rewrites a record's message (and its formatted arguments) with URL passwords masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed call is logging's to report, not ours
        return
    masked = mask(message)
    if masked != message:
        record.msg, record.args = masked, None


_installed = False


def install() -> None:
    """Mask every record this process creates, whichever logger or handler it goes to (idempotent).

    A record factory rather than a handler filter: uvicorn, Celery and Python's last-resort handler each
    have their own handlers, and a filter on a logger does not see its children's records.
    """
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
