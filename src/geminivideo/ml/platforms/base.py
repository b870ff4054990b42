"""The interface every ad-platform adapter implements, and the errors it raises.

An adapter does two things: ``fetch_daily_metrics`` yields pages of one-row-per-ad-per-day records (keys as the
metrics import accepts them: ``ad_id, day, impressions, reach, frequency, clicks, spend, conversions`` …), and
``apply_change`` makes one approved change after reading the current state, so a retried execution that
finds the change already made does not make it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from geminivideo.errors import PermanentError, TransientError


class RateLimited(TransientError):
    """The platform asked us to slow down; ``wait_s`` is how long before the next call may succeed."""

    def __init__(self, message: str, wait_s: float = 60.0) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class PlatformAuthError(PermanentError):
    """The access token is expired, revoked or lacks a permission: a person must renew it."""


class ReportJobFailed(TransientError):
    """An asynchronous report job ended "Job Failed" or "Job Skipped" (the message holds the platform's fields)."""


ChangeKind = Literal["pause", "resume", "budget"]


@dataclass(frozen=True)
class ChangeRequest:
    """One approved change: pause or resume an ad, or set the daily budget of the ad's ad set (major units)."""

    kind: ChangeKind
    ad_id: str
    amount: float | None = None


class AdPlatform(Protocol):
    """One ad platform (Meta, TikTok, Google Ads …)."""

    name: str

    def fetch_daily_metrics(self, account_id: str, since: date, until: date) -> Iterator[list[dict[str, Any]]]:
        """Pages of daily rows for every ad of ``account_id`` from ``since`` to ``until`` (inclusive)."""
        ...

    def apply_change(self, change: ChangeRequest) -> dict[str, Any]:
        """Make ``change`` unless the platform already shows it; return the platform's answer (JSON-able)."""
        ...
