"""The jobs page: recent video jobs, live progress bars fed by the jobs API's SSE stream, outputs, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.exc import SQLAlchemyError

from geminivideo import client
from geminivideo.api import jobs as jobs_api
from geminivideo.api import limits
from geminivideo.api.auth import Principal
from geminivideo.api.console import sessions
from geminivideo.api.console.rendering import SECURITY_HEADERS, render
from geminivideo.api.console.sessions import ConsoleSession, require_session
from geminivideo.client import JobAlreadyFinished, JobKind, UnknownJob
from geminivideo.config import get_settings
from geminivideo.contracts import FINAL_STATUSES, ProgressEvent, TaskStatus
from geminivideo.db.models import VideoJob
from geminivideo.db.session import session_scope
from geminivideo.errors import DependencyUnavailable
from geminivideo.progress import status_key
from geminivideo.redis_client import get_redis

router = APIRouter()
PATH_KEYS = ("output_path", "srt_path", "vtt_path", "json_path", "sprite_path")
FINAL = {s.value for s in FINAL_STATUSES}


@dataclass
class Output:
    label: str
    href: str


@dataclass
class JobRow:
    task_id: str
    kind: str
    status: str
    progress: float
    message: str
    created_at: Any
    error: str | None
    outputs: list[Output]

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _outputs(task_id: str, result: dict[str, Any] | None) -> list[Output]:
    """Links to a job's outputs: presigned URLs when the object store gave some, else the console's file route."""
    if not result:
        return []
    found = [Output(key.removesuffix("_url"), str(value)) for key, value in result.items()
             if key.endswith("download_url") and isinstance(value, str) and value.startswith("https://")]
    found += [Output(key.removesuffix("_path"), f"/console/jobs/{task_id}/files/{key}")
              for key in PATH_KEYS if isinstance(result.get(key), str)]
    frames = result.get("preview_paths")
    if isinstance(frames, list):
        found += [Output(f"frame {i + 1}", f"/console/jobs/{task_id}/files/preview_paths/{i}")
                  for i in range(min(len(frames), 12))]
    return found


def _progress_records(task_ids: list[str]) -> dict[str, ProgressEvent]:
    """Each job's ``task_status`` record (one MGET for the page), where it has not expired."""
    if not task_ids:
        return {}
    raws = get_redis().mget([status_key(t) for t in task_ids])
    return {t: ProgressEvent.model_validate_json(raw) for t, raw in zip(task_ids, raws, strict=True) if raw}


def recent_jobs(kind: str, job_status: str, limit: int = 50, tenant_id: str | None = None) -> list[JobRow]:
    """Recent jobs newest first, with the status and progress of each job's ``task_status`` record.

    The record is fresher than the row for a running job, and keeps how far a cancelled or failed one got.
    """
    rows = client.list_jobs(kind=JobKind(kind) if kind else None, status=TaskStatus(job_status) if job_status else None,
                            limit=limit, tenant_id=tenant_id)
    records = _progress_records([r.task_id for r in rows])
    out = []
    for row in rows:
        event = records.get(row.task_id)
        current = row.status if row.status in FINAL or event is None else event.status.value
        progress = 100.0 if current == TaskStatus.COMPLETED else (event.progress if event is not None else 0.0)
        out.append(JobRow(row.task_id, row.kind, current, progress, event.message if event else "", row.created_at,
                          row.error, _outputs(row.task_id, row.result)))
    return out


@router.get("/console/jobs", include_in_schema=False)
async def jobs_page(request: Request, session: Annotated[ConsoleSession, Depends(require_session)],
                    kind: str = "", job_status: Annotated[str, Query(alias="status")] = "") -> Response:
    kind = kind if kind in {k.value for k in JobKind} else ""
    job_status = job_status if job_status in {s.value for s in TaskStatus} else ""
    error = ""
    try:
        rows = await run_in_threadpool(recent_jobs, kind, job_status, 50, session.identity.tenant_id)
    except (DependencyUnavailable, redis.RedisError, SQLAlchemyError) as exc:
        rows, error = [], f"Could not read the jobs: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return render(request, "jobs.html", session, page="jobs", rows=rows, kind=kind, job_status=job_status,
                  kinds=[k.value for k in JobKind], statuses=[s.value for s in TaskStatus], error=error,
                  query=urlencode({"kind": kind, "status": job_status}))


async def _console_stream_slot(request: Request, session: Annotated[ConsoleSession, Depends(require_session)]
                               ) -> AsyncIterator[None]:
    """The API's open-stream caps (SSE_MAX_STREAMS, per key and in total) for a console page's stream too."""
    who = Principal(name=session.identity.name, tenant_id=session.identity.tenant_id)
    async for _ in limits.stream_slot(request, who):
        yield


@router.get("/console/jobs/{task_id}/events", include_in_schema=False, response_class=EventSourceResponse)
async def job_events(task_id: str, session: Annotated[ConsoleSession, Depends(require_session)],
                     _slot: Annotated[None, Depends(_console_stream_slot)]) -> AsyncIterator[ServerSentEvent]:
    """The jobs API's own SSE stream (``GET /api/jobs/{id}/events``), behind the console's session."""
    try:
        if not await run_in_threadpool(client.job_visible, task_id, session.identity.tenant_id):
            raise UnknownJob(task_id)  # another tenant's job reads as unknown
        state = await run_in_threadpool(client.job_state, task_id)
    except UnknownJob:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {task_id!r}") from None
    async for event in jobs_api.job_events(task_id, state, None, timeout_s=3600):
        yield event


@router.post("/console/jobs/{task_id}/cancel", include_in_schema=False)
async def cancel_job(task_id: str, request: Request, session: Annotated[ConsoleSession, Depends(require_session)]
                     ) -> Response:
    form = await sessions.read_form(request)
    sessions.check_csrf(request, session, form)
    try:
        if not await run_in_threadpool(client.job_visible, task_id, session.identity.tenant_id):
            raise UnknownJob(f"no job with id {task_id!r}")  # another tenant's job reads as unknown
        state = await run_in_threadpool(client.cancel, task_id)
        sessions.flash(session, "ok", f"Job {task_id} {state.status.value}.")
    except (UnknownJob, JobAlreadyFinished, DependencyUnavailable) as exc:
        sessions.flash(session, "error", f"Job {task_id} was not cancelled: {exc}")
    back = form.get("back") or ""
    location = "/console/jobs" + (f"?{back}" if back and "//" not in back and "\n" not in back else "")
    return RedirectResponse(location, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


def _output_file(task_id: str, key: str, index: int | None) -> Path:
    with session_scope() as db:
        job = db.get(VideoJob, task_id)
        result = dict(job.result or {}) if job is not None else {}
    value = result.get(key)
    if index is not None and isinstance(value, list) and 0 <= index < len(value):
        value = value[index]
    if not isinstance(value, str):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {task_id} has no output {key!r}")
    path = Path(value).resolve()
    settings = get_settings()
    allowed = [settings.render_dir.resolve(), settings.preview_dir.resolve()]
    if not any(path.is_relative_to(root) for root in allowed) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"output {key!r} of job {task_id} is not available here")
    return path


@router.get("/console/jobs/{task_id}/files/{key}", include_in_schema=False)
@router.get("/console/jobs/{task_id}/files/{key}/{index}", include_in_schema=False)
async def job_file(task_id: str, key: str, session: Annotated[ConsoleSession, Depends(require_session)],
                   index: int | None = None) -> Response:
    """A local output file of a finished job (inside RENDER_DIR or PREVIEW_DIR only)."""
    if key not in (*PATH_KEYS, "preview_paths"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown output {key!r}")
    path = await run_in_threadpool(_output_file, task_id, key, index)
    return FileResponse(path, filename=path.name, headers={"X-Content-Type-Options": "nosniff"})
