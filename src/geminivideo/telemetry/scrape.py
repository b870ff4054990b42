"""Gauges computed when the API's ``/metrics`` is scraped: state that lives in the broker and the database.

- ``geminivideo_queue_messages{queue,app}``: messages waiting, every priority level summed (kombu's own count:
  on Redis each priority is a separate list, ``<queue>`` then ``<queue>\\x06\\x16<n>``);
- ``geminivideo_queue_oldest_message_age_seconds{queue,app}``: how long the oldest waiting message has waited
  (Redis: the tail of each priority list, by the ``gv_sent_at`` header senders stamp);
- ``geminivideo_webhook_oldest_unapplied_age_seconds`` and ``geminivideo_webhook_events{status}``;
- ``geminivideo_approvals{status}``: proposed ad changes by state (pending, approved, rejected, executed,
  blocked by a gate…);
- ``geminivideo_approval_decisions_total{decision}``: changes a person approved or rejected, whoever decided and
  wherever (API, console, ``geminivideo approvals approve|reject``): every decided row keeps its ``decided_at``,
  and rows are never deleted, so the count only grows;
- ``geminivideo_scrape_errors{source}``: 1 when a source could not be read on this scrape.

Reading them at scrape time keeps one source of truth: any number of API processes report the same figures.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER, QueueName
from geminivideo.telemetry.celery_hooks import SENT_AT_HEADER
from geminivideo.telemetry.metrics import PREFIX

log = logging.getLogger(__name__)


def _apps() -> Iterable[tuple[str, Any, tuple[QueueName, ...]]]:
    from geminivideo import client

    return (("video", client.video_app(), VIDEO_QUEUE_ORDER), ("ml", client.ml_app(), ML_QUEUE_ORDER))


def _message_sent_at(raw: Any) -> float | None:
    try:
        sent = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
        return float(sent) if sent is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def _oldest_sent_at(channel: Any, queue: str) -> float | None:
    """Redis transport: the earliest ``gv_sent_at`` among the tails of the queue's priority lists."""
    if not hasattr(channel, "_q_for_pri") or not hasattr(channel, "client"):
        return None  # AMQP: the broker does not let us peek without consuming
    pipe = channel.client.pipeline(transaction=False)
    for priority in channel.priority_steps:
        pipe.lindex(channel._q_for_pri(queue, priority), -1)  # kombu pushes left, pops right: the tail is oldest
    stamps = [stamp for stamp in (_message_sent_at(raw) for raw in pipe.execute() if raw) if stamp is not None]
    return min(stamps) if stamps else None


def queue_figures() -> list[tuple[str, str, int, float | None]]:
    """(queue, app, waiting messages, oldest message age in seconds or None) for every declared queue."""
    from geminivideo.client import _queue_size

    now = time.time()
    figures = []
    for app_name, app, queues in _apps():
        with app.connection_for_read() as conn, conn.channel() as channel:
            for queue in queues:
                waiting = _queue_size(channel, queue)
                oldest = _oldest_sent_at(channel, str(queue)) if waiting else None
                figures.append((str(queue), app_name, waiting, None if oldest is None else max(0.0, now - oldest)))
    return figures


def database_figures() -> dict[str, Any]:
    """Webhook events and approvals by status, decisions taken, and the oldest unapplied event's receive time."""
    from sqlalchemy import func, select

    from geminivideo.db.models.decisions import ChangeStatus, PendingAdChange
    from geminivideo.db.models.webhooks import EventStatus, WebhookEvent
    from geminivideo.db.session import session_scope

    with session_scope() as session:
        events = dict(session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all())
        oldest = session.execute(
            select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status.in_(EventStatus.OPEN))).scalar()
        changes = dict(session.execute(
            select(PendingAdChange.status, func.count()).group_by(PendingAdChange.status)).all())
        rejected = PendingAdChange.status == ChangeStatus.REJECTED.value
        decisions = dict(session.execute(
            select(rejected, func.count()).where(PendingAdChange.decided_at.is_not(None)).group_by(rejected)).all())
    return {"events": events, "oldest_unapplied": oldest, "approvals": changes,
            "decisions": {"approved": decisions.get(False, 0), "rejected": decisions.get(True, 0)}}


def _age_s(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


class ScrapeCollector(Collector):
    """The broker and database gauges, read on each collect()."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        errors = GaugeMetricFamily(f"{PREFIX}_scrape_errors", "1 when a source could not be read", labels=["source"])
        try:
            yield from self._queues()
            errors.add_metric(["broker"], 0)
        except Exception as exc:  # a scrape must answer even while the broker is down
            log.warning("queue gauges unavailable: %s", exc)
            errors.add_metric(["broker"], 1)
        try:
            yield from self._database()
            errors.add_metric(["database"], 0)
        except Exception as exc:
            log.warning("database gauges unavailable: %s", exc)
            errors.add_metric(["database"], 1)
        yield errors

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(f"{PREFIX}_queue_messages", "Messages waiting, all priorities",
                                  labels=["queue", "app"])
        age = GaugeMetricFamily(f"{PREFIX}_queue_oldest_message_age_seconds",
                                "Age of the oldest waiting message (0 when empty)", labels=["queue", "app"])
        for queue, app_name, waiting, oldest in queue_figures():
            depth.add_metric([queue, app_name], waiting)
            age.add_metric([queue, app_name], oldest or 0.0)
        yield depth
        yield age

    def _database(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from geminivideo.db.models.decisions import ChangeStatus
        from geminivideo.db.models.webhooks import EventStatus

        found = database_figures()
        events = GaugeMetricFamily(f"{PREFIX}_webhook_events", "Stored webhook events by status", labels=["status"])
        for status in (*EventStatus.OPEN, *EventStatus.FINAL):
            events.add_metric([status], found["events"].get(status, 0))
        yield events
        yield GaugeMetricFamily(f"{PREFIX}_webhook_oldest_unapplied_age_seconds",
                                "Age of the oldest stored event not yet applied (0 when none)",
                                value=_age_s(found["oldest_unapplied"]))
        approvals = GaugeMetricFamily(f"{PREFIX}_approvals", "Proposed ad changes by status", labels=["status"])
        for change_status in ChangeStatus:
            approvals.add_metric([change_status.value], found["approvals"].get(change_status.value, 0))
        yield approvals
        decisions = CounterMetricFamily(f"{PREFIX}_approval_decisions", "Proposed changes approved or rejected",
                                        labels=["decision"])
        for decision, count in found["decisions"].items():
            decisions.add_metric([decision], count)
        yield decisions
