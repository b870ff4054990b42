"""Workers keep ``video_jobs`` rows up to date themselves, whether or not anybody reads the job."""

from __future__ import annotations

import time
import uuid

from geminivideo import procs
from geminivideo.db.models import VideoJob
from geminivideo.db.session import session_scope
from geminivideo.video.tasks import render_video_task
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*


def _row(task_id: str) -> VideoJob | None:
    with session_scope() as session:
        return session.get(VideoJob, task_id)


def test_a_failed_job_row_is_updated_by_the_worker(video_worker: procs.ManagedProcess, test_env: HarnessEnv) -> None:
    task_id = str(uuid.uuid4())
    payload = {"scenes": [{"video_path": str(test_env.media_dir / "missing.mp4")}]}
    with session_scope() as session:
        session.add(VideoJob(task_id=task_id, kind="render", payload=payload, status="queued"))
    render_video_task.apply_async((payload,), task_id=task_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (row := _row(task_id)) is not None and row.status in ("queued", "started"):
        time.sleep(0.3)
    row = _row(task_id)
    assert row is not None and row.status == "failed"
    assert row.error is not None and "missing.mp4" in row.error
