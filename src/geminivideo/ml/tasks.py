"""ML tasks: thin wrappers around the webhook pipeline, fatigue monitor, approvals and winner index."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery.utils.time import get_exponential_backoff_interval

from geminivideo.celery_base import GeminiTask
from geminivideo.contracts import (
    DealStageChange,
    FatigueScanJob,
    IndexWinnerJob,
    TaskName,
    parse_payload,
    utcnow,
)
from geminivideo.errors import InvalidPayload, TransientError
from geminivideo.ml.celery_app import app
from geminivideo.ml.decisions import approvals, fatigue
from geminivideo.ml.platforms import executor, sync
from geminivideo.ml.webhooks import pipeline as hubspot
from geminivideo.ml.webhooks import store as webhook_store
from geminivideo.ml.winners import service as winners


# No task_status keys: at webhook volume (hundreds a second) 24-hour progress keys would fill Redis, and
# each event's state is kept in webhook_events (GET /api/webhooks/hubspot/events/<key>).
def _event_repr(args: Any, kwargs: Any) -> dict[str, str]:
    """A direct caller's event shows as its key, like a batch does: never its IP addresses or user agents."""
    event = args[0] if args else (kwargs or {}).get("event")
    key = _key(event) if isinstance(event, dict) else "unkeyed"
    return webhook_store.batch_repr([key])


@app.task(name=str(TaskName.PROCESS_HUBSPOT_WEBHOOK), bind=True, shared=False, publishes_progress=False,
          message_repr=staticmethod(_event_repr))  # staticmethod: a plain function would bind as a method
def process_hubspot_webhook(self: GeminiTask, event: dict[str, Any]) -> dict[str, Any]:
    # The message id keys a change sent without an eventKey, so a redelivered message credits once.
    return hubspot.process_event(event, delivery_id=self.request.id).model_dump(mode="json")


@app.task(name=str(TaskName.PROCESS_HUBSPOT_EVENTS), bind=True, shared=False, publishes_progress=False)
def process_hubspot_events(self: GeminiTask, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored batch (what the webhook endpoint and the sweeper send): each event applied once, in order."""
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise InvalidPayload("process_hubspot_events takes one argument: a list of deal-stage change objects")
    if len(events) > webhook_store.MAX_EVENTS_PER_MESSAGE:
        raise InvalidPayload(f"{len(events)} events in one message; at most {webhook_store.MAX_EVENTS_PER_MESSAGE}")
    outcome = hubspot.process_events(events)
    if outcome.unstarted:  # out of time: the rest goes on in a new message (the sweeper backs this up)
        webhook_store.send((_key(e), e) for e in outcome.unstarted)
    if outcome.deferred:
        error = TransientError(f"{len(outcome.deferred)} of {len(events)} events deferred: {outcome.last_error}")
        countdown = get_exponential_backoff_interval(
            factor=self.retry_backoff, retries=self.request.retries, maximum=self.retry_backoff_max, full_jitter=True)
        # Only the deferred events travel again (the message's other options stay); past max_retries the task
        # fails and they wait for the sweeper.
        raise self.retry(args=[outcome.deferred], exc=error, countdown=countdown,
                         **webhook_store.batch_repr([_key(e) for e in outcome.deferred]))
    return outcome.summary()


def _key(event: dict[str, Any]) -> str:
    return str(event.get("eventKey") or "unkeyed")


@app.task(name=str(TaskName.SWEEP_WEBHOOK_EVENTS), bind=True, shared=False, publishes_progress=False)
def sweep_webhook_events(self: GeminiTask) -> dict[str, Any]:
    return hubspot.sweep_unprocessed_events()


@app.task(name=str(TaskName.MONITOR_ALL_ADS_FATIGUE), bind=True, shared=False)
def monitor_all_ads_fatigue(self: GeminiTask, **options: Any) -> dict[str, Any]:
    return _scan_fatigue(self, options)


@app.task(name=str(TaskName.MONITOR_FATIGUE), bind=True, shared=False)
def monitor_fatigue(self: GeminiTask, **options: Any) -> dict[str, Any]:
    """Alias of ``monitor_all_ads_fatigue`` kept for the seed's callers."""
    return _scan_fatigue(self, options)


def _scan_fatigue(task: GeminiTask, options: dict[str, Any]) -> dict[str, Any]:
    # One body for both names; progress and the scan's task id are the calling task's own.
    payload = parse_payload(FatigueScanJob, options)
    return fatigue.scan_all_ads(payload, task.progress().processing, task_id=task.request.id).model_dump(mode="json")


@app.task(name=str(TaskName.AUTO_INDEX_WINNERS), bind=True, shared=False)
def auto_index_winners(self: GeminiTask) -> dict[str, Any]:
    return winners.index_all_winners(self.progress().processing).model_dump(mode="json")


@app.task(name=str(TaskName.AUTO_INDEX_WINNER), bind=True, shared=False)
def auto_index_winner(
    self: GeminiTask, ad_id: str, creative_dna: dict[str, Any], force: bool = False
) -> dict[str, Any]:
    payload = parse_payload(IndexWinnerJob, {"ad_id": ad_id, "creative_dna": creative_dna, "force": force})
    return winners.index_winner(payload).model_dump(mode="json")


@app.task(name=str(TaskName.EXECUTE_APPROVED_CHANGES), bind=True, shared=False, publishes_progress=False)
def execute_approved_changes(self: GeminiTask, limit: int = 100) -> dict[str, Any]:
    factory, mode = executor.client_factory()  # META_EXECUTE: record only (default) or send to Meta
    return {**approvals.execute_approved_changes(limit=limit, client_factory=factory, owner=self.request.id),
            "mode": mode}


@app.task(name=str(TaskName.SYNC_AD_METRICS), bind=True, shared=False, publishes_progress=False)
def sync_ad_metrics(self: GeminiTask, days: int | None = None, accounts: list[str] | None = None) -> dict[str, Any]:
    """Insights of every META_AD_ACCOUNTS account; rate-limited or failed-for-now accounts run again later."""
    result = sync.sync_ad_metrics(accounts=accounts, days=days)
    if result.get("reschedule"):
        # Only the accounts that did not finish travel again, after Meta's wait (or the usual backoff).
        countdown = result["wait_s"] or get_exponential_backoff_interval(
            factor=self.retry_backoff, retries=self.request.retries, maximum=self.retry_backoff_max, full_jitter=True)
        error = TransientError(f"{len(result['reschedule'])} account(s) to sync again in {countdown:.0f} s: "
                               + "; ".join(a["error"] or "" for a in result["accounts"] if a["status"] != "synced"))
        raise self.retry(kwargs={"days": days, "accounts": result["reschedule"]}, exc=error, countdown=countdown)
    return result


@app.task(name=str(TaskName.ML_PING), bind=True, shared=False, publishes_progress=False)
def ml_ping(self: GeminiTask, echo: str = "pong") -> dict[str, Any]:
    """Round trip through the broker: proves a worker of this app consumes and answers."""
    return {"echo": echo, "app": "ml", "hostname": self.request.hostname, "host": socket.gethostname(),
            "pid": os.getpid(), "timestamp": utcnow().isoformat()}


__all__ = ["DealStageChange"]
