"""The webhooks page: recent HubSpot events with their state, failures with their error, stored→applied lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from geminivideo.api.console.rendering import render
from geminivideo.api.console.sessions import ConsoleSession, require_session
from geminivideo.contracts import utcnow
from geminivideo.db.models.webhooks import EventStatus, WebhookEvent
from geminivideo.db.session import session_scope

router = APIRouter()
STATUSES = (EventStatus.PENDING, EventStatus.ENQUEUED, EventStatus.PROCESSED, EventStatus.STALE,
            EventStatus.IGNORED, EventStatus.FAILED)
LAG_WINDOW = timedelta(hours=24)
LAG_SAMPLE = 5000


@dataclass
class Lag:
    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


@dataclass
class WebhookView:
    events: list[WebhookEvent]
    failures: list[WebhookEvent]
    counts: dict[str, int]
    lag: Lag


def _lag(seconds: list[float]) -> Lag:
    if not seconds:
        return Lag(0, None, None, None)
    values = np.array(seconds)
    return Lag(len(values), float(np.percentile(values, 50)), float(np.percentile(values, 95)), float(values.max()))


def load_view(event_status: str, limit: int = 100) -> WebhookView:
    """Recent events (optionally of one status), the latest failures, counts by status, and the lag from
    stored to applied over the last day's processed events."""
    with session_scope() as session:
        recent = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
        if event_status:
            recent = recent.where(WebhookEvent.status == event_status)
        events = list(session.scalars(recent))
        failures = list(session.scalars(select(WebhookEvent).where(WebhookEvent.status == EventStatus.FAILED)
                                        .order_by(WebhookEvent.id.desc()).limit(20)))
        counts = {str(s): int(n) for s, n in session.execute(
            select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status))}
        applied = session.execute(select(WebhookEvent.received_at, WebhookEvent.processed_at).where(
            WebhookEvent.status == EventStatus.PROCESSED, WebhookEvent.processed_at > utcnow() - LAG_WINDOW,
        ).order_by(WebhookEvent.id.desc()).limit(LAG_SAMPLE)).all()
        session.expunge_all()
    lag = _lag([(done - got).total_seconds() for got, done in applied if got is not None and done is not None])
    return WebhookView(events, failures, counts, lag)


@router.get("/console/webhooks", include_in_schema=False)
async def webhooks_page(request: Request, session: Annotated[ConsoleSession, Depends(require_session)],
                        status: str = "") -> Response:
    status = status if status in STATUSES else ""
    view = await run_in_threadpool(load_view, status)
    return render(request, "webhooks.html", session, page="webhooks", view=view, status=status, statuses=STATUSES)
