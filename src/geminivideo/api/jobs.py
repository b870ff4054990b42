"""Video job submit, status, progress stream and cancel; queue lengths and workers.

``POST /api/video/{render,preview,transcode,caption}`` take the task payload models of ``contracts.py``
(so a bad field is a 422 naming it) and answer ``202 {task_id, status_url, events_url}``. Progress is
the task_status record and the task_progress channel of DESIGN.md §4, streamed as Server-Sent Events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from geminivideo import client
from geminivideo.api.auth import JobsRead, JobsWrite, MetricsRead, Principal, fleet_wide
from geminivideo.api.limits import RATE_LIMIT_RESPONSES, StreamSlot, rate_limit, single_flight
from geminivideo.client import JobKind, JobState, QueueInfo, UnknownJob, WorkerInfo
from geminivideo.contracts import CaptionJob, PreviewJob, RenderJob, StoredObject, TaskStatus, TranscodeJob
from geminivideo.errors import Conflict, PermanentError
from geminivideo.redis_client import get_redis
from geminivideo.security import idempotency

router = APIRouter(tags=["jobs"])

MAX_STREAM_S = 24 * 3600
WORKERS_FRESH_S = 2.0  # parallel /api/workers calls within this share one inspection
SUBMIT: dict[str, Any] = {"dependencies": [rate_limit("jobs")], "responses": RATE_LIMIT_RESPONSES,
          "status_code": status.HTTP_202_ACCEPTED}


class Submitted(BaseModel):
    task_id: str
    kind: str
    status: TaskStatus
    status_url: str
    events_url: str


class JobSummary(BaseModel):
    task_id: str
    kind: str
    status: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None


def _submit(request: Request, kind: JobKind, payload: Any, principal: Principal) -> Submitted:
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is None:
        task_id = client.submit(kind, payload, tenant_id=principal.tenant_id)
    else:
        task_id = _submit_once(kind, payload, principal, idempotency_key)
    return Submitted(
        task_id=task_id,
        kind=str(kind),
        status=TaskStatus.QUEUED,
        status_url=str(request.url_for("get_job", task_id=task_id)),
        events_url=str(request.url_for("job_events", task_id=task_id)),
    )


@router.post("/api/video/render", **SUBMIT)
def submit_render(request: Request, job: RenderJob, principal: JobsWrite) -> Submitted:
    """Render an ad from scenes (``render_video_task``)."""
    return _submit(request, JobKind.RENDER, job, principal)


@router.post("/api/video/preview", **SUBMIT)
def submit_preview(request: Request, job: PreviewJob, principal: JobsWrite) -> Submitted:
    """Extract preview frames, optionally a sprite sheet with a WebVTT track (``generate_preview_task``)."""
    return _submit(request, JobKind.PREVIEW, job, principal)


@router.post("/api/video/transcode", **SUBMIT)
def submit_transcode(request: Request, job: TranscodeJob, principal: JobsWrite) -> Submitted:
    """Transcode a video to another codec and container (``transcode_task``)."""
    return _submit(request, JobKind.TRANSCODE, job, principal)


@router.post("/api/video/caption", **SUBMIT)
def submit_caption(request: Request, job: CaptionJob, principal: JobsWrite) -> Submitted:
    """Transcribe a video's speech into SRT/WebVTT captions (``caption_task``)."""
    return _submit(request, JobKind.CAPTION, job, principal)


def _submit_once(kind: JobKind, payload: Any, principal: Principal, key: str) -> str:
    """Send the job unless this key already sent the same body (then its task id); 422 for another body."""
    data = payload.model_dump(mode="json")
    claim = idempotency.claim(get_redis(), principal.name, key, idempotency.body_hash(str(kind), data),
                              str(uuid.uuid4()))  # the same key with another body: InvalidPayload, 422
    if not claim.fresh:
        return claim.task_id
    try:
        return client.submit(kind, payload, tenant_id=principal.tenant_id, task_id=claim.task_id)
    except Exception:
        idempotency.release(get_redis(), principal.name, key)  # never sent: the client's retry must send it
        raise


def _visible_state(task_id: str, principal: Principal) -> JobState:
    """The job's state; another tenant's job reads as unknown (UnknownJob, 404)."""
    if not client.job_visible(task_id, principal.tenant_id):
        raise UnknownJob(f"no job with id {task_id!r}")
    return client.job_state(task_id)


@router.get("/api/jobs")
def list_jobs(
    principal: JobsRead,
    kind: JobKind | None = None,
    job_status: Annotated[TaskStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobSummary]:
    """Recently submitted jobs, newest first."""
    rows = client.list_jobs(kind=kind, status=job_status, limit=limit, tenant_id=principal.tenant_id)
    return [
        JobSummary(task_id=r.task_id, kind=r.kind, status=r.status, created_at=r.created_at,
                   updated_at=r.updated_at, error=r.error)
        for r in rows
    ]


@router.get("/api/jobs/{task_id}", name="get_job")
def get_job(task_id: str, principal: JobsRead) -> JobState:
    """The job's progress record, its Celery state, and its result once done (an unknown id is a 404)."""
    return _visible_state(task_id, principal)


class JobOutputs(BaseModel):
    task_id: str
    status: TaskStatus
    outputs: list[StoredObject]


@router.get("/api/jobs/{task_id}/outputs", name="job_outputs")
def get_job_outputs(task_id: str, principal: JobsRead) -> JobOutputs:
    """The job's outputs in the object store, each with a freshly presigned download URL (PRESIGN_EXPIRY_S)."""
    from geminivideo.storage.outputs import fresh_links, stored_outputs  # boto3 only for this route

    state = _visible_state(task_id, principal)
    try:
        outputs = fresh_links(stored_outputs(state.result))
    except PermanentError as exc:
        raise Conflict(str(exc)) from None
    return JobOutputs(task_id=task_id, status=state.status, outputs=outputs)


def _known_job(task_id: str, principal: JobsRead) -> JobState:
    # A dependency, so an unknown id is a plain 404 before the event stream starts.
    return _visible_state(task_id, principal)


@router.get("/api/jobs/{task_id}/events", name="job_events", response_class=EventSourceResponse)
async def job_events(
    task_id: str,
    state: Annotated[JobState, Depends(_known_job)],
    _slot: StreamSlot,
    timeout_s: Annotated[float, Query(gt=0, le=MAX_STREAM_S)] = 3600,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events from ``task_progress:<id>`` until a final status (``event:`` is the status)."""
    if state.is_final:
        # Nothing more will be published (the record may even have expired): say how it ended.
        yield _sse(state.model_dump(mode="json", include=_EVENT_FIELDS), state.status)
        return
    async for event in client.follow_async(task_id, timeout_s=timeout_s):
        yield _sse(event.model_dump(mode="json"), event.status)
        if event.is_final:
            await run_in_threadpool(client.job_state, task_id)  # records the outcome in video_jobs


_EVENT_FIELDS = {"task_id", "progress", "status", "message", "updated_at"}


def _sse(data: dict[str, Any], event_status: TaskStatus) -> ServerSentEvent:
    if "updated_at" in data:
        data["timestamp"] = data.pop("updated_at")
    return ServerSentEvent(data=data, event=event_status.value)


@router.delete("/api/jobs/{task_id}", status_code=status.HTTP_202_ACCEPTED)
def cancel_job(task_id: str, principal: JobsWrite) -> JobState:
    """Revoke the job with terminate: a running FFmpeg process group is killed; the status becomes cancelled."""
    _visible_state(task_id, principal)
    return client.cancel(task_id)


@router.get("/api/queues")
def get_queues(principal: MetricsRead) -> list[QueueInfo]:
    """Messages waiting per queue, most urgent first within each app."""
    fleet_wide(principal)
    return client.queue_lengths()


@router.get("/api/workers")
async def get_workers(
    request: Request, principal: MetricsRead, timeout_s: Annotated[float, Query(gt=0, le=10)] = 1.0
) -> list[WorkerInfo]:
    """Workers answering ``inspect ping``, with their queues, concurrency, processed count and active tasks."""
    fleet_wide(principal)
    return await single_flight(request, "workers", WORKERS_FRESH_S).get(lambda: client.workers(timeout_s))
