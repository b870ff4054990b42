"""Crediting an ad's ``ad_sampler_state`` (what the budget sampler learns from), atomically.

Used inside the webhook pipeline's transaction and by ``POST /api/ml/battle-hardened/feedback``. The
update is one ``INSERT … ON CONFLICT (ad_id) DO UPDATE SET x = x + delta``, so concurrent credits to
one ad add up instead of overwriting each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geminivideo.contracts import SamplerFeedback, utcnow
from geminivideo.db.dialect import dialect_insert, insert_ignoring_conflicts
from geminivideo.db.models.core import Ad, AdSamplerState
from geminivideo.db.models.webhooks import SamplerFeedbackRecord
from geminivideo.errors import NotFound


@dataclass(frozen=True)
class AdCredit:
    pipeline_value: float = 0.0
    cash_revenue: float = 0.0
    conversions: int = 0
    feedback: int = 1

    @property
    def empty(self) -> bool:
        return not (self.pipeline_value or self.cash_revenue or self.conversions)


def ad_exists(session: Session, ad_id: str) -> bool:
    return session.scalar(select(Ad.id).where(Ad.id == ad_id)) is not None


def credit_ad(session: Session, ad_id: str, credit: AdCredit) -> None:
    """Add ``credit`` to the ad's sampler state (creating it); the caller's transaction commits it."""
    table = AdSamplerState.__table__
    statement = dialect_insert(session, AdSamplerState).values(
        ad_id=ad_id, pipeline_value=credit.pipeline_value, cash_revenue=credit.cash_revenue,
        conversions=credit.conversions, feedback_count=credit.feedback, updated_at=utcnow(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=["ad_id"],
        set_={
            "pipeline_value": table.c.pipeline_value + statement.excluded.pipeline_value,
            "cash_revenue": table.c.cash_revenue + statement.excluded.cash_revenue,
            "conversions": table.c.conversions + statement.excluded.conversions,
            "feedback_count": table.c.feedback_count + statement.excluded.feedback_count,
            "updated_at": statement.excluded.updated_at,
        },
    )
    session.execute(statement)


def sampler_state(session: Session, ad_id: str) -> dict[str, Any] | None:
    row = session.get(AdSamplerState, ad_id, populate_existing=True)
    if row is None:
        return None
    return {"ad_id": row.ad_id, "pipeline_value": row.pipeline_value, "cash_revenue": row.cash_revenue,
            "conversions": row.conversions, "feedback_count": row.feedback_count, "updated_at": row.updated_at}


def record_feedback(session: Session, feedback: SamplerFeedback) -> tuple[bool, dict[str, Any]]:
    """Apply external feedback once per ``feedback_id``; return (applied now, the ad's state)."""
    if not ad_exists(session, feedback.ad_id):
        raise NotFound(f"ad_id: no ad {feedback.ad_id!r} exists")
    feedback_id = feedback.feedback_id or uuid.uuid4().hex
    inserted = session.scalars(
        insert_ignoring_conflicts(session, SamplerFeedbackRecord, ["feedback_id"])
        .values(feedback_id=feedback_id, ad_id=feedback.ad_id, pipeline_value=feedback.pipeline_value,
                cash_revenue=feedback.cash_revenue, conversions=feedback.conversions, created_at=utcnow())
        .returning(SamplerFeedbackRecord.id)
    ).first()
    if inserted is not None:
        credit = AdCredit(feedback.pipeline_value, feedback.cash_revenue, feedback.conversions)
        credit_ad(session, feedback.ad_id, credit)
    return inserted is not None, sampler_state(session, feedback.ad_id) or {}
