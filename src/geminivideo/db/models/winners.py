"""Winner index tables: per-tenant winner thresholds, creative DNA per ad, and what the FAISS index holds.

``winner_index_entries`` mirrors ``winners.faiss`` row for row (one row per indexed ad, keyed by the
ad and its stable vector id); the index file itself holds only vectors and ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from geminivideo.db.base import Base, UTCDateTime, utcnow

DEFAULT_MIN_ROAS = 3.0
DEFAULT_MIN_SPEND = 100.0
DEFAULT_MIN_IMPRESSIONS = 1000
DEFAULT_MIN_CTR = 0.01


class WinnerThresholds(Base):
    """A tenant's own definition of a winner; tenants without a row use the defaults above."""

    __tablename__ = "winner_thresholds"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    min_roas: Mapped[float] = mapped_column(Float, default=DEFAULT_MIN_ROAS)
    min_spend: Mapped[float] = mapped_column(Float, default=DEFAULT_MIN_SPEND)
    min_impressions: Mapped[int] = mapped_column(Integer, default=DEFAULT_MIN_IMPRESSIONS)
    min_ctr: Mapped[float] = mapped_column(Float, default=DEFAULT_MIN_CTR)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CreativeDnaRecord(Base):
    """An ad's validated creative DNA, the text embedded for it and that text's content hash."""

    __tablename__ = "creative_dna"

    ad_id: Mapped[str] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), primary_key=True)
    dna: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    format: Mapped[str | None] = mapped_column(String(8), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WinnerIndexEntry(Base):
    """One vector in the winner index: which ad, which content, and its metrics when last indexed."""

    __tablename__ = "winner_index_entries"

    ad_id: Mapped[str] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), primary_key=True)
    vector_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    format: Mapped[str | None] = mapped_column(String(8), nullable=True, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    impressions: Mapped[int] = mapped_column(BigInteger, default=0)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    spend: Mapped[float] = mapped_column(Float, default=0.0)
    pipeline_value: Mapped[float] = mapped_column(Float, default=0.0)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


__all__ = ["CreativeDnaRecord", "WinnerIndexEntry", "WinnerThresholds"]
