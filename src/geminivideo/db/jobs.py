"""Keep ``video_jobs`` rows in step with their tasks, written by the worker as the task moves on."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from geminivideo.db.models import VideoJob
from geminivideo.db.session import session_scope

log = logging.getLogger(__name__)


def record_status(task_id: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """Update the job row of ``task_id`` if one exists; return whether a row changed.

    Jobs sent straight to Celery (not through the API or CLI) have no row, which is fine. A database
    hiccup is logged, never raised: the task's outcome is already in the result backend.
    """
    try:
        with session_scope() as session:
            row = session.get(VideoJob, task_id)
            if row is None or (row.status == status and result is None and error is None):
                return False
            row.status = status
            if result is not None:
                row.result = result
            if error is not None:
                row.error = error
            return True
    except SQLAlchemyError as exc:
        log.warning("video job %s: status %s not recorded: %s", task_id, status, exc)
        return False
