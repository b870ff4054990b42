"""Decisions tables: fatigue scans and reports, per-tenant fatigue thresholds, the approval queue
(``pending_ad_changes``) and the ad-platform calls the executor made.

One schema and one vocabulary for every proposal, whatever its source (fatigue monitor, sampler, a person).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from geminivideo.db.base import Base, UTCDateTime, utcnow


class ChangeType(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    BUDGET = "budget"


class ChangeSource(StrEnum):
    FATIGUE_MONITOR = "fatigue_monitor"
    SAMPLER = "sampler"
    MANUAL = "manual"


class ChangeStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTING = "executing"
    EXECUTED = "executed"
    BLOCKED = "blocked"
    FAILED = "failed"


# A proposal is "open" while a person or the executor still has to act on it; one open proposal per ad.
OPEN_CHANGE_STATUSES: tuple[ChangeStatus, ...] = (
    ChangeStatus.PENDING_APPROVAL,
    ChangeStatus.APPROVED,
    ChangeStatus.EXECUTING,
)
OPEN_CHANGE_SQL = "status IN ('pending_approval', 'approved', 'executing')"
OPEN_CHANGE_WHERE = text(OPEN_CHANGE_SQL)


class FatigueStatus(StrEnum):
    HEALTHY = "HEALTHY"
    FATIGUING = "FATIGUING"
    SATURATED = "SATURATED"
    AUDIENCE_EXHAUSTED = "AUDIENCE_EXHAUSTED"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


class FatigueScan(Base):
    """One run of the fatigue monitor (all ads of one tenant, or of every tenant)."""

    __tablename__ = "fatigue_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    as_of: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, completed, failed
    ads_scanned: Mapped[int] = mapped_column(Integer, default=0)
    by_status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    critical: Mapped[int] = mapped_column(Integer, default=0)
    proposals_created: Mapped[int] = mapped_column(Integer, default=0)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FatigueReport(Base):
    """The verdict on one ad in one scan, with the numbers behind every rule."""

    __tablename__ = "fatigue_reports"
    __table_args__ = (Index("ix_fatigue_reports_ad_id_id", "ad_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("fatigue_scans.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    ad_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    days_until_critical: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FatigueSettings(Base):
    """Per-tenant overrides of the fatigue thresholds (names of ``fatigue.FatigueThresholds`` fields)."""

    __tablename__ = "fatigue_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class PendingAdChange(Base):
    """A proposed change to one ad; nothing reaches the ad platform before a person approves it."""

    __tablename__ = "pending_ad_changes"
    __table_args__ = (
        Index("ix_pending_ad_changes_campaign_id_executed_at", "campaign_id", "executed_at"),
        Index("uq_pending_ad_changes_open_ad", "ad_id", unique=True,
              sqlite_where=OPEN_CHANGE_WHERE, postgresql_where=OPEN_CHANGE_WHERE),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    ad_id: Mapped[str] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str] = mapped_column(String(128))
    change_type: Mapped[str] = mapped_column(String(16))
    current_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    requested_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default=ChangeStatus.PENDING_APPROVAL, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AdPlatformCall(Base):
    """Every call the executor made through the ad-platform client (the default client only records)."""

    __tablename__ = "ad_platform_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("pending_ad_changes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(128))
    ad_id: Mapped[str] = mapped_column(String(128), index=True)
    campaign_id: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client: Mapped[str] = mapped_column(String(64), default="recording")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


__all__ = [
    "OPEN_CHANGE_SQL",
    "OPEN_CHANGE_STATUSES",
    "AdPlatformCall",
    "ChangeSource",
    "ChangeStatus",
    "ChangeType",
    "FatigueReport",
    "FatigueScan",
    "FatigueSettings",
    "FatigueStatus",
    "PendingAdChange",
    "Severity",
]
