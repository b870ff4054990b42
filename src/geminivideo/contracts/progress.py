"""The progress protocol (DESIGN.md §4): status values and the JSON record of task_status:<id>."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)


# ─── Progress protocol (DESIGN.md §4) ─────────────────────────────────────────────────────────────
class TaskStatus(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class ProgressEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    progress: float = Field(ge=0, le=100)
    status: TaskStatus
    message: str = ""
    timestamp: datetime
    # The publishing attempt's fencing token (leases/fencing.py); None for records written outside an attempt.
    lease_token: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
