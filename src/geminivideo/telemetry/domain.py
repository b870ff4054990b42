"""Counters the domain code reports to in one call each: webhook events and approval executions.

Approval *decisions* are not counted here: the API, the console and the CLI all decide, and only the API is
scraped; ``scrape`` reads them from the database (``geminivideo_approval_decisions_total``).

Each function is a no-op in a process nobody scrapes (see ``metrics.recording``), so the domain modules call
them unconditionally.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from geminivideo.telemetry.metrics import metrics, recording

EXECUTION_OUTCOMES = ("executed", "blocked", "failed")


def webhook_ingested(received: int, stored: int, source: str = "hubspot") -> None:
    """A delivery the API accepted: events in it, and how many were new (stored for the first time)."""
    if recording():
        found = metrics()
        found.webhook_received.labels(source).inc(received)
        found.webhook_stored.labels(source).inc(stored)


def webhook_applied(outcome: str, received_at: datetime | None) -> None:
    """One stored event applied (``processed`` or ``stale``), with its lag since it was stored."""
    if not recording():
        return
    found = metrics()
    found.webhook_applied.labels(outcome).inc()
    if received_at is not None:
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        found.webhook_lag.observe(max(0.0, (datetime.now(UTC) - received_at).total_seconds()))


def webhook_failed() -> None:
    if recording():
        metrics().webhook_failed.inc()


def approvals_executed(outcomes: Mapping[str, int]) -> None:
    """One executor run: how many changes were executed, blocked by a gate, or failed."""
    if recording():
        for outcome in EXECUTION_OUTCOMES:
            if outcomes.get(outcome):
                metrics().approval_executions.labels(outcome).inc(outcomes[outcome])
