"""Celery wiring of split-and-stitch transcoding (the work is in ``split_transcode.py``).

``transcode_task`` splits a long input and replaces itself (``Task.replace``) with a chord on
``transcode_queue``: one ``transcode_segment_task`` per part (any worker of any host takes them), then
``transcode_stitch_task``, which inherits the job's task id, so ``AsyncResult(job_id).get()``, the
``task_status:<job_id>`` record and the job's database row all end with the stitched result. No scheduler
of our own: retries are Celery's (late acks redeliver a part whose worker died; a part whose FFmpeg failed
is retried alone), cancellation is Celery's revoke of the job and of its parts' derived ids. Jobs with s3://
media carry their parts through the object store (``split_store``), so the parts may run on any host.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chord, group
from celery.canvas import Signature

from geminivideo.celery_base import GeminiTask
from geminivideo.contracts import TaskName, TaskStatus, TranscodeJob
from geminivideo.errors import ProcessingFailed
from geminivideo.progress import ProgressPublisher
from geminivideo.redis_client import get_redis
from geminivideo.storage.outputs import publish_result
from geminivideo.storage.staging import task_media
from geminivideo.video import split_transcode
from geminivideo.video.celery_app import app
from geminivideo.video.split_transcode import SplitPlan

log = logging.getLogger(__name__)

PART_RETRIES = 2  # an FFmpeg failure on one part is retried this often before the job fails
PART_RETRY_DELAY_S = 2
CANCEL_SIGNAL = "SIGTERM"  # as client.cancel: the pool's handler unwinds the task and FFmpeg's group dies


def split_signature(plan: SplitPlan) -> Signature:
    """The chord that encodes every part, then stitches; its error callback fails and cleans up the job."""
    data = plan.model_dump(mode="json")
    header = group(transcode_segment_task.signature((data, part.index),
                                                    task_id=split_transcode.part_task_id(plan.job_id, part.index))
                   for part in plan.parts)
    body = transcode_stitch_task.signature((data,), link_error=[transcode_split_failed_task.s()])
    return chord(header, body)


def start_split(task: GeminiTask, job: TranscodeJob) -> Any:
    """Split ``job`` if it is long enough and replace ``task`` with the chord; None: encode it in one piece.

    Call it inside the task's ``task_media`` scope: an s3:// input is downloaded there to be split.
    """
    if task.request.id is None:  # called as a plain function: nothing to replace
        return None
    plan = split_transcode.prepare(job, task.request.id, get_redis(), task.progress().processing)
    if plan is None:
        return None
    task.progress().processing(split_transcode.PARTS_SPAN[0], f"split into {len(plan.parts)} parts")
    return task.replace(split_signature(plan))  # raises Ignore; the stitch task reports under this id


@app.task(name=str(TaskName.TRANSCODE_SEGMENT), bind=True, shared=False)
def transcode_segment_task(self: GeminiTask, plan: dict[str, Any], index: int) -> dict[str, Any]:
    split = SplitPlan.model_validate(plan)
    client = get_redis()
    try:
        return split_transcode.encode_part(split, index, client)
    except ProcessingFailed as exc:
        if self.request.retries < PART_RETRIES and not split_transcode.job_cancelled(client, split.job_id):
            raise self.retry(exc=exc, countdown=PART_RETRY_DELAY_S, max_retries=PART_RETRIES) from None
        _stop_siblings(split, index, f"part {index} failed: {exc}")
        raise
    except BaseException:
        if split_transcode.job_cancelled(client, split.job_id):
            split_transcode.discard(client, split.job_id)
        raise


def _stop_siblings(plan: SplitPlan, failed: int, reason: str) -> None:
    """One part failed for good: the job fails now, not after every other part has been encoded for nothing."""
    ProgressPublisher(get_redis(), plan.job_id).publish(TaskStatus.FAILED, None, reason)
    others = [split_transcode.part_task_id(plan.job_id, p.index) for p in plan.parts if p.index != failed]
    app.control.revoke(others, terminate=True, signal=CANCEL_SIGNAL)


@app.task(name=str(TaskName.TRANSCODE_STITCH), bind=True, shared=False, records_video_job=True)
def transcode_stitch_task(self: GeminiTask, parts: list[dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
    split = SplitPlan.model_validate(plan)
    client = get_redis()
    with task_media(split.job_id, split.output_url) as media:  # the s3:// input (for its audio) in, the output out
        result = split_transcode.stitch(split, client, self.progress().processing)
        published = publish_result(media, result, split.job())
    split_transcode.discard(client, split.job_id)  # a store job's parts: kept until the output is published
    return published.model_dump(mode="json")


@app.task(name=str(TaskName.TRANSCODE_SPLIT_FAILED), shared=False, publishes_progress=False)
def transcode_split_failed_task(request: Any, exc: BaseException, traceback: Any) -> None:
    """Error callback of the chord (Celery calls it with the failed body's request): fail the job, clean up."""
    job_id = str(request.id)
    client = get_redis()
    cancelled = split_transcode.job_cancelled(client, job_id)
    # Every part has returned by now (the chord fires after the last one), and this may run inside the last
    # part's own pool process: revoking parts here would terminate the process that is reporting the failure.
    split_transcode.discard(client, job_id)
    if cancelled:  # the canceller already recorded it; "failed" must not replace "cancelled"
        return
    reason = f"split transcode failed: {type(exc).__name__}: {exc}"
    log.warning("transcode %s: %s", job_id, reason)
    ProgressPublisher(client, job_id).publish(TaskStatus.FAILED, None, reason)
    from geminivideo.db.jobs import record_status  # the DB layer only where a job row is written

    record_status(job_id, TaskStatus.FAILED.value, error=reason)
