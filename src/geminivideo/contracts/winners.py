"""Winner index payloads and results: index one winner, index them all."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
)

from geminivideo.contracts.base import Payload


# ─── ML: winners ──────────────────────────────────────────────────────────────────────────────────
class IndexWinnerJob(Payload):
    ad_id: str = Field(min_length=1, max_length=128)
    creative_dna: dict[str, Any]
    force: bool = False


class IndexWinnerResult(BaseModel):
    """What ``auto_index_winner`` did with one ad, and why when it was not indexed."""

    ad_id: str
    indexed: bool
    action: Literal["added", "updated", "unchanged", "removed", "skipped"]
    is_winner: bool
    forced: bool
    reasons: list[str]
    vector_id: int | None = None
    total: int
    timestamp: datetime


class IndexWinnersResult(BaseModel):
    added: int
    updated: int
    removed: int
    unchanged: int
    total: int
    winners: int = 0
    forced: int = 0
    winners_without_dna: int = 0
    embedded: int = 0
    duration_s: float = 0.0
    timestamp: datetime
