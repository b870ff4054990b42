"""Fatigue monitor and other decision payloads and results."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import (
    BaseModel,
    Field,
)

from geminivideo.contracts.base import Payload


# ─── ML: fatigue ──────────────────────────────────────────────────────────────────────────────────
class FatigueScanJob(Payload):
    tenant_id: str | None = Field(None, min_length=1, max_length=128)
    chunk_size: int = Field(5000, ge=1, le=100_000)
    as_of: date | None = None  # last day to judge; default the latest day with metrics
    lookback_days: int = Field(30, ge=7, le=120)
    create_proposals: bool = True


class FatigueScanResult(BaseModel):
    ads_scanned: int
    by_status: dict[str, int]
    critical: int
    proposals_created: int
    timestamp: datetime
    scan_id: int | None = None
    as_of: date | None = None
    warnings: int = 0
    duration_s: float = 0.0
