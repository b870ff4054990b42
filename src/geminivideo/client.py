"""Client side of the task system: submit video jobs, read their state, cancel them, look at queues and workers.

Shared by the HTTP API, the CLI and the demo, so a job submitted any of those ways is validated, recorded in
``video_jobs``, enqueued with its queue's priority and reported the same way. Jobs are sent by task name
(``send_task``): submitting never imports the worker's task modules (FFmpeg wrappers, Whisper).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis
import redis.asyncio as aioredis
from celery import Celery, states
from celery.result import AsyncResult
from kombu.exceptions import ChannelError, OperationalError
from pydantic import BaseModel

from geminivideo.celery_base import announce_queued, task_priority
from geminivideo.config import get_settings
from geminivideo.contracts import (
    DEFAULT_PRIORITY,
    FINAL_STATUSES,
    ML_QUEUE_ORDER,
    QUEUE_PRIORITY,
    TASK_QUEUE,
    VIDEO_QUEUE_ORDER,
    CaptionJob,
    PreviewJob,
    ProgressEvent,
    QueueName,
    RenderJob,
    TaskName,
    TaskStatus,
    TranscodeJob,
)
from geminivideo.db.models import VideoJob
from geminivideo.db.session import session_scope
from geminivideo.errors import Conflict, DependencyUnavailable, NotFound
from geminivideo.progress import FollowSteps, ProgressPublisher, follow, progress_channel, read_status, status_key
from geminivideo.redis_client import get_redis

CANCEL_SIGNAL = "SIGTERM"  # the pool's SIGTERM handler unwinds the task, so FFmpeg's group is killed and cleaned


class JobKind(StrEnum):
    RENDER = "render"
    PREVIEW = "preview"
    TRANSCODE = "transcode"
    CAPTION = "caption"


@dataclass(frozen=True)
class _KindSpec:
    task: TaskName
    model: type[BaseModel]
    # How the task's signature takes the payload: render takes one dict, the others keyword arguments.
    as_call: Callable[[dict[str, Any]], tuple[list[Any], dict[str, Any]]]


KINDS: dict[JobKind, _KindSpec] = {
    JobKind.RENDER: _KindSpec(TaskName.RENDER_VIDEO, RenderJob, lambda p: ([p], {})),
    JobKind.PREVIEW: _KindSpec(TaskName.GENERATE_PREVIEW, PreviewJob, lambda p: ([], p)),
    JobKind.TRANSCODE: _KindSpec(TaskName.TRANSCODE, TranscodeJob, lambda p: ([], p)),
    JobKind.CAPTION: _KindSpec(TaskName.CAPTION, CaptionJob, lambda p: ([], p)),
}

RESULT_GRACE_S = 5.0
_CELERY_TO_STATUS = {
    states.PENDING: TaskStatus.QUEUED,
    states.RECEIVED: TaskStatus.QUEUED,
    states.STARTED: TaskStatus.STARTED,
    states.RETRY: TaskStatus.RETRYING,
    states.SUCCESS: TaskStatus.COMPLETED,
    states.FAILURE: TaskStatus.FAILED,
    states.REVOKED: TaskStatus.CANCELLED,
}


class UnknownJob(NotFound):
    """No task with this id was ever submitted (or its records have expired)."""


class JobAlreadyFinished(Conflict):
    """A cancel request for a job that already completed or failed."""


class JobState(BaseModel):
    """Everything known about one job: progress record, Celery state and result, submission record."""

    task_id: str
    kind: str | None = None
    task_name: str | None = None
    status: TaskStatus
    progress: float = 0.0
    message: str = ""
    updated_at: datetime | None = None
    celery_state: str
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def video_app() -> Celery:
    from geminivideo.video.celery_app import app

    return app


def ml_app() -> Celery:
    from geminivideo.ml.celery_app import app

    return app


# ─── Submit ──────────────────────────────────────────────────────────────────────────────────────
def submit(
    kind: JobKind, payload: BaseModel | dict[str, Any], *, record: bool = True, tenant_id: str | None = None,
    task_id: str | None = None,
) -> str:
    """Validate, record and enqueue one video job; return its task id.

    The row is written before the message is sent, so a fast worker never finishes a job the database
    does not know; if the broker refuses the message the row is marked failed and the error re-raised.
    """
    spec = KINDS[kind]
    model = payload if isinstance(payload, spec.model) else spec.model.model_validate(payload)
    data = model.model_dump(mode="json", exclude_unset=False)
    task_id = task_id or str(uuid.uuid4())  # chosen by the caller when an Idempotency-Key claimed it first
    if record:
        with session_scope() as session:
            session.add(VideoJob(task_id=task_id, kind=str(kind), payload=data, status=TaskStatus.QUEUED.value,
                                 tenant_id=tenant_id))
    try:
        send(spec.task, *spec.as_call(data), task_id=task_id)
    except DependencyUnavailable as exc:
        if record:
            _update_record(task_id, TaskStatus.FAILED, error=str(exc))
        raise
    return task_id


def send(task: TaskName, args: list[Any], kwargs: dict[str, Any], *, task_id: str | None = None) -> str:
    """Enqueue ``task`` by name with its queue's priority and publish ``queued``; return the task id."""
    app = video_app() if TASK_QUEUE[task] in VIDEO_QUEUE_ORDER else ml_app()
    try:
        result = app.send_task(str(task), args=args, kwargs=kwargs, task_id=task_id, priority=task_priority(task))
    except OperationalError as exc:
        where = _safe_url(get_settings().broker_url)
        raise DependencyUnavailable(f"broker at {where} refused the job: {exc}") from None
    announce_queued(result.id)
    return str(result.id)


# ─── State ───────────────────────────────────────────────────────────────────────────────────────
def _record(task_id: str) -> VideoJob | None:
    with session_scope() as session:
        return session.get(VideoJob, task_id)


def job_visible(task_id: str, tenant_id: str | None) -> bool:
    """Whether a caller limited to ``tenant_id`` (None: every tenant) may see the job: its row says whose it is."""
    if tenant_id is None:
        return True
    row = _record(task_id)
    return row is not None and row.tenant_id == tenant_id


def _update_record(
    task_id: str, status: TaskStatus, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    with session_scope() as session:
        row = session.get(VideoJob, task_id)
        if row is not None and row.status != status.value:
            row.status, row.result, row.error = status.value, result, error


def _celery_view(task_id: str) -> tuple[str, dict[str, Any] | None, str | None, str | None]:
    """(state, result, error, task name) from the result backend."""
    result = AsyncResult(task_id, app=video_app())
    state = str(result.state)
    value: dict[str, Any] | None = None
    error: str | None = None
    if state == states.SUCCESS:
        raw = result.result
        value = raw if isinstance(raw, dict) else {"value": raw}
    elif state in (states.FAILURE, states.REVOKED) and result.result is not None:
        exc = result.result
        error = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
    name = getattr(result, "name", None)
    return state, value, error, name


def _await_result(
    task_id: str, *view: Any, timeout_s: float = RESULT_GRACE_S
) -> tuple[str, dict[str, Any] | None, str | None, str | None]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        latest = _celery_view(task_id)
        if latest[0] in states.READY_STATES:
            return latest
    return view


def job_state(task_id: str) -> JobState:
    """Combine the progress record, the Celery state and the submission record; raise UnknownJob."""
    event = read_status(get_redis(), task_id)
    celery_state, result, error, task_name = _celery_view(task_id)
    if event is not None and event.is_final and celery_state not in states.READY_STATES:
        # Workers publish the final status just before Celery stores the result: give it a moment.
        celery_state, result, error, task_name = _await_result(task_id, celery_state, result, error, task_name)
    row = _record(task_id)
    if event is None and row is None and celery_state == states.PENDING:
        raise UnknownJob(f"no job with id {task_id!r}")
    status = event.status if event is not None else _CELERY_TO_STATUS.get(celery_state, TaskStatus.QUEUED)
    # A final Celery state wins over a progress record that has not caught up (e.g. a killed pool child).
    if celery_state in states.READY_STATES and status not in FINAL_STATUSES:
        status = _CELERY_TO_STATUS[celery_state]
    if error is None and status is TaskStatus.FAILED and event is not None:
        error = event.message
    state = JobState(
        task_id=task_id,
        kind=row.kind if row else None,
        task_name=task_name or _task_name_for(row),
        status=status,
        progress=100.0 if status is TaskStatus.COMPLETED else (event.progress if event else 0.0),
        message=event.message if event else "",
        updated_at=event.timestamp if event else (row.updated_at if row else None),
        celery_state=celery_state,
        result=result,
        error=error or (row.error if row else None),
        created_at=row.created_at if row else None,
    )
    if row is not None and state.is_final and row.status != status.value:
        _update_record(task_id, status, result=result, error=state.error)
    return state


def _task_name_for(row: VideoJob | None) -> str | None:
    return str(KINDS[JobKind(row.kind)].task) if row is not None and row.kind in JobKind.__members__.values() else None


def list_jobs(
    *, kind: JobKind | None = None, status: TaskStatus | None = None, limit: int = 50, tenant_id: str | None = None
) -> list[VideoJob]:
    from sqlalchemy import select

    query = select(VideoJob).order_by(VideoJob.created_at.desc()).limit(limit)
    if kind is not None:
        query = query.where(VideoJob.kind == str(kind))
    if status is not None:
        query = query.where(VideoJob.status == status.value)
    if tenant_id is not None:
        query = query.where(VideoJob.tenant_id == tenant_id)
    with session_scope() as session:
        return list(session.scalars(query))


def cancel(task_id: str) -> JobState:
    """Revoke a job with terminate (the running task unwinds and its FFmpeg group dies); mark it cancelled."""
    state = job_state(task_id)
    if state.status is TaskStatus.CANCELLED:
        return state
    if state.is_final:
        raise JobAlreadyFinished(f"job {task_id} already {state.status.value}; nothing to cancel")
    video_app().control.revoke(task_id, terminate=True, signal=CANCEL_SIGNAL)
    _revoke_split_parts(task_id)
    # Also recorded here: a job still waiting in the queue has no worker to report its cancellation yet.
    ProgressPublisher(get_redis(), task_id).publish(TaskStatus.CANCELLED, None, "cancelled by request")
    _update_record(task_id, TaskStatus.CANCELLED, error="cancelled by request")
    return job_state(task_id)


def _revoke_split_parts(task_id: str) -> None:
    """A split transcode's parts run under ids derived from the job's: revoke them too (none for other jobs)."""
    from geminivideo.video.split_transcode import part_ids  # video code only when a job is cancelled

    parts = part_ids(get_redis(), task_id)
    if parts:
        video_app().control.revoke(parts, terminate=True, signal=CANCEL_SIGNAL)


def wait_events(task_id: str, *, timeout_s: float = 3600.0) -> Iterator[ProgressEvent]:
    """Progress events of one job until a final status (blocking; for the CLI and the demo)."""
    yield from follow(get_redis(), task_id, timeout_s=timeout_s)


async def follow_async(task_id: str, *, timeout_s: float = 3600.0) -> AsyncIterator[ProgressEvent]:
    """Asynchronous ``progress.follow`` (the same ``FollowSteps``, awaited): subscribe, replay the stored status,
    then stream."""
    steps = FollowSteps(timeout_s)
    client = aioredis.Redis.from_url(get_settings().redis_url, decode_responses=True, socket_connect_timeout=5)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(progress_channel(task_id))
        if (event := steps.stored(await client.get(status_key(task_id)))) is not None:
            yield event
        while (wait_s := steps.next_wait_s()) is not None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
            if (event := steps.received(message)) is not None:
                yield event
    finally:
        await pubsub.aclose()
        await client.aclose()


# ─── Queues and workers ──────────────────────────────────────────────────────────────────────────
class QueueInfo(BaseModel):
    name: str
    app: str
    priority: int
    messages: int


def queue_lengths() -> list[QueueInfo]:
    """Messages waiting in every declared queue (all priority levels summed on Redis)."""
    found: list[QueueInfo] = []
    for app_name, app, queues in (("video", video_app(), VIDEO_QUEUE_ORDER), ("ml", ml_app(), ML_QUEUE_ORDER)):
        try:
            with app.connection_for_read() as conn, conn.channel() as channel:
                found.extend(
                    QueueInfo(
                        name=str(q), app=app_name, priority=QUEUE_PRIORITY.get(q, DEFAULT_PRIORITY),
                        messages=_queue_size(channel, q),
                    )
                    for q in queues
                )
        except (OperationalError, OSError, redis.RedisError) as exc:
            raise DependencyUnavailable(f"broker of the {app_name} app did not answer: {exc}") from None
    return found


def _queue_size(channel: Any, queue: QueueName) -> int:
    try:
        return int(channel.queue_declare(queue=str(queue), passive=True).message_count)
    except ChannelError:
        return 0  # never declared or empty on Redis: no key exists


class WorkerInfo(BaseModel):
    name: str
    app: str
    queues: list[str]
    concurrency: int | None
    processed: int
    active: list[dict[str, Any]]
    pid: int | None
    uptime_s: float | None


def workers(timeout_s: float = 1.0) -> list[WorkerInfo]:
    """Workers that answer ``inspect ping``, with their queues, pool size, processed count and active tasks."""
    # Both apps share one broker (CELERY_BROKER_URL) and its control exchange: one broadcast reaches all.
    found = _inspect(video_app(), timeout_s)
    return [found[name] for name in sorted(found)]


def _inspect(app: Celery, timeout_s: float) -> dict[str, WorkerInfo]:
    try:
        names = list((app.control.inspect(timeout=timeout_s).ping() or {}).keys())
    except (OperationalError, OSError, redis.RedisError) as exc:
        raise DependencyUnavailable(f"broker did not answer a worker ping: {exc}") from None
    if not names:
        return {}
    # Knowing who answered lets the next calls return as soon as every worker has replied.
    inspect = app.control.inspect(timeout=timeout_s, destination=names, limit=len(names))
    stats, queues, active = inspect.stats() or {}, inspect.active_queues() or {}, inspect.active() or {}
    return {name: _worker_info(name, stats.get(name, {}), queues.get(name, []), active.get(name, [])) for name in names}


def _worker_info(name: str, stats: dict[str, Any], queues: list[dict[str, Any]], active: list[Any]) -> WorkerInfo:
    queue_names = [str(q.get("name")) for q in queues]
    app_name = "video" if any(q in VIDEO_QUEUE_ORDER for q in queue_names) else "ml"
    pool = stats.get("pool") or {}
    return WorkerInfo(
        name=name,
        app=app_name,
        queues=queue_names,
        concurrency=pool.get("max-concurrency"),
        processed=sum((stats.get("total") or {}).values()),
        active=[{"id": t.get("id"), "name": t.get("name"), "time_start": t.get("time_start")} for t in active],
        pid=stats.get("pid"),
        uptime_s=stats.get("uptime"),
    )


def _safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else ''}{host}"


__all__ = [
    "KINDS",
    "JobAlreadyFinished",
    "JobKind",
    "JobState",
    "QueueInfo",
    "UnknownJob",
    "WorkerInfo",
    "cancel",
    "follow_async",
    "job_state",
    "list_jobs",
    "queue_lengths",
    "send",
    "submit",
    "wait_events",
    "workers",
]
