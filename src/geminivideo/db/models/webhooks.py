"""Tables of the HubSpot webhook pipeline: stored events, deal state, conversions, clicks, attribution log.

Exactly-once rests on three unique keys: ``webhook_events.idempotency_key`` (an event is stored once),
``conversions.event_key`` (an event credits once) and ``sampler_feedback.feedback_id`` (external
feedback counts once). Amounts are floats like the core sampler columns they feed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from geminivideo.db.base import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class EventStatus:
    """Life of a stored webhook event."""

    PENDING = "pending"  # stored, not yet handed to the broker
    ENQUEUED = "enqueued"  # a process_hubspot_webhook message was sent
    PROCESSED = "processed"  # credited (or found nothing to credit)
    STALE = "stale"  # older than the deal's last applied change: recorded, not applied
    IGNORED = "ignored"  # not a deal-stage change: stored and acknowledged only
    FAILED = "failed"  # permanent error (invalid payload, unknown stage…); see ``error``

    OPEN = (PENDING, ENQUEUED)
    FINAL = (PROCESSED, STALE, IGNORED, FAILED)


class WebhookEvent(Base):
    """One received event, stored before it is enqueued; the row is the source of truth for the sweeper."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_status_received_at", "status", "received_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # hubspot, internal, task
    event_type: Mapped[str] = mapped_column(String(128))
    portal_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the event as received
    deal_payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # normalised task payload
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)  # how often the sender delivered it
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class DealState(Base):
    """What the pipeline has applied to one deal: the stage, value and credit the next change starts from."""

    __tablename__ = "deal_states"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stage: Mapped[str] = mapped_column(String(128))
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_value: Mapped[float] = mapped_column(Float, default=0.0)  # synthetic value at ``stage``
    opening_value: Mapped[float] = mapped_column(Float, default=0.0)  # value before the first event we saw
    credited_value: Mapped[float] = mapped_column(Float, default=0.0)  # sum of conversion credits
    ad_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    # What ad_id's sampler state has received from this deal, so a late attribution catches up once.
    ad_credited_value: Mapped[float] = mapped_column(Float, default=0.0)
    ad_cash_credited: Mapped[float] = mapped_column(Float, default=0.0)
    ad_won: Mapped[bool] = mapped_column(Boolean, default=False)
    won: Mapped[bool] = mapped_column(Boolean, default=False)
    cash_credited: Mapped[float] = mapped_column(Float, default=0.0)
    last_occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_event_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Conversion(Base):
    """One applied deal-stage change and the credit it gave (at most one per event)."""

    __tablename__ = "conversions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    deal_id: Mapped[str] = mapped_column(String(128), index=True)
    ad_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    stage_from: Mapped[str | None] = mapped_column(String(128), nullable=True)
    stage_to: Mapped[str] = mapped_column(String(128))
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    amount_source: Mapped[str] = mapped_column(String(32))
    synthetic_value: Mapped[float] = mapped_column(Float)
    credit: Mapped[float] = mapped_column(Float)
    ad_credit: Mapped[float] = mapped_column(Float, default=0.0)
    cash_credit: Mapped[float] = mapped_column(Float, default=0.0)
    attributed_spend: Mapped[float | None] = mapped_column(Float, nullable=True)
    attribution_layer: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attribution_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClickEvent(Base):
    """An ad click with the identifiers attribution matches on."""

    __tablename__ = "click_events"
    __table_args__ = (
        Index("ix_click_events_fingerprint_clicked_at", "fingerprint_hash", "clicked_at"),
        Index("ix_click_events_ip_network_clicked_at", "ip_network", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    ad_id: Mapped[str] = mapped_column(String(128), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    click_id: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    fbclid: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    gclid: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    fingerprint_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip_network: Mapped[str | None] = mapped_column(String(64), nullable=True)  # /24 or /64, for layer 3
    user_agent: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    utm: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AttributionAttempt(Base):
    """One attribution run: each layer, whether it ran, what it found, and the outcome."""

    __tablename__ = "attribution_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    deal_id: Mapped[str] = mapped_column(String(128), index=True)
    layers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    layer: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ad_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    click_event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    conversion_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantPipeline(Base):
    """A tenant's deal pipeline (stage rules, average deal value) and its HubSpot portal, if any."""

    __tablename__ = "tenant_pipelines"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    portal_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SamplerFeedbackRecord(Base):
    """External feedback applied to ``ad_sampler_state``; the feedback id makes a resend a no-op."""

    __tablename__ = "sampler_feedback"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    feedback_id: Mapped[str] = mapped_column(String(128), unique=True)
    ad_id: Mapped[str] = mapped_column(String(128), index=True)
    pipeline_value: Mapped[float] = mapped_column(Float)
    cash_revenue: Mapped[float] = mapped_column(Float)
    conversions: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


__all__ = [
    "AttributionAttempt",
    "ClickEvent",
    "Conversion",
    "DealState",
    "EventStatus",
    "SamplerFeedbackRecord",
    "TenantPipeline",
    "WebhookEvent",
]
