"""Submitting a video task to a real worker while listening to its progress channel, and leftover checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
from celery import Task
from celery.result import AsyncResult

from geminivideo import procs
from geminivideo.contracts import ProgressEvent, QueueName, TaskStatus
from geminivideo.progress import progress_channel, read_status
from geminivideo.video.ffmpeg import is_partial
from geminivideo.video.split_transcode import part_task_id

FINAL = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@dataclass
class Run:
    result: AsyncResult
    value: Any = None
    error: BaseException | None = None
    events: list[ProgressEvent] = field(default_factory=list)

    @property
    def statuses(self) -> list[TaskStatus]:
        return [e.status for e in self.events]


class Listener:
    """Subscribed to a task's progress channel before the task is sent, so no event is missed."""

    def __init__(self, client: redis.Redis, task_id: str) -> None:
        self.task_id = task_id
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(progress_channel(task_id))
        self.events: list[ProgressEvent] = []

    def poll(self, timeout_s: float = 0.1) -> ProgressEvent | None:
        message = self._pubsub.get_message(timeout=timeout_s)
        if message is None:
            return None
        event = ProgressEvent.model_validate_json(message["data"])
        self.events.append(event)
        return event

    def until_final(self, timeout_s: float = 15) -> list[ProgressEvent]:
        """Every event up to a final status (published just after the result is stored)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (self.events and self.events[-1].status in FINAL):
            self.poll(0.2)
        return self.events

    def close(self) -> None:
        self._pubsub.close()


def send(
    client: redis.Redis, task: Task, *args: Any, queue: str | None = None, **kwargs: Any
) -> tuple[AsyncResult, Listener]:
    """Subscribe to the task's progress channel, then send it (to ``queue`` when given)."""
    task_id = f"test-{uuid.uuid4()}"
    listener = Listener(client, task_id)
    options: dict[str, Any] = {"task_id": task_id}
    if queue:
        options["queue"] = queue
    return task.apply_async(args, kwargs, **options), listener


def run(client: redis.Redis, task: Task, *args: Any, timeout_s: float = 120, queue: str | None = None,
        **kwargs: Any) -> Run:
    """Send, wait for the result (or error), then collect the progress events up to the final one."""
    result, listener = send(client, task, *args, queue=queue, **kwargs)
    outcome = Run(result)
    try:
        outcome.value = result.get(timeout=timeout_s)
    except Exception as exc:  # the test asserts on the type and message
        outcome.error = exc
    try:
        outcome.events = listener.until_final()
    finally:
        listener.close()
    return outcome


def assert_progress_protocol(events: list[ProgressEvent], final: TaskStatus) -> None:
    """Monotonic progress, the design's status order, and exactly the expected final status at the end."""
    assert events, "no progress event was published"
    assert events[-1].status is final, [(e.status, e.progress, e.message) for e in events]
    values = [e.progress for e in events]
    assert values == sorted(values), f"progress went backwards: {values}"
    assert all(0 <= v <= 100 for v in values)
    assert TaskStatus.STARTED in [e.status for e in events]
    if final is TaskStatus.COMPLETED:
        assert events[-1].progress == 100


def stored_status(client: redis.Redis, task_id: str) -> ProgressEvent:
    event = read_status(client, task_id)
    assert event is not None, f"no task_status:{task_id}"
    return event


def wait_status(client: redis.Redis, task_id: str, wanted: Iterable[TaskStatus], timeout_s: float = 60,
                min_progress: float = 0.0) -> ProgressEvent:
    wanted = set(wanted)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = read_status(client, task_id)
        if event is not None and event.status in wanted and event.progress >= min_progress:
            return event
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never reached {wanted} (progress ≥ {min_progress}); "
                         f"last: {read_status(client, task_id)}")


def ffmpeg_processes(marker: str) -> list[psutil.Process]:
    """Live FFmpeg processes whose command line mentions ``marker`` (a path unique to the test)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "ffmpeg" and any(marker in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_no_ffmpeg(marker: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not ffmpeg_processes(marker):
            return
        time.sleep(0.2)
    raise AssertionError(f"FFmpeg still running for {marker}: {[p.pid for p in ffmpeg_processes(marker)]}")


def partial_files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob(".*") if is_partial(p)]


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# ─── split-and-stitch jobs ────────────────────────────────────────────────────────────────────────
SPLIT_ENV = {"SPLIT_MIN_S": "3", "SPLIT_SEGMENT_S": "2"}  # a 10 s clip with a keyframe a second: five parts


def start_split_workers(start_worker: Callable[..., procs.ManagedProcess], n: int, name: str,
                        **env: str) -> str:
    """Start ``n`` transcode workers (concurrency 1) that split long inputs; return the job's queue: private to
    the test, so no session worker with the default SPLIT_MIN_S takes the job (its parts go to
    ``transcode_queue`` as in production)."""
    queue = f"{name}-{uuid.uuid4().hex[:8]}"
    for i in range(n):
        start_worker("video", queues=[queue, str(QueueName.TRANSCODE)], concurrency=1, name=f"{name}{i}",
                     **SPLIT_ENV, **env)
    return queue


def part_workers(task: Task, job_id: str, parts: int) -> set[str]:
    """Which workers encoded the parts (result_extended stores the worker's name with each result)."""
    return {str(task.AsyncResult(part_task_id(job_id, i)).worker) for i in range(parts)}


def pool_child_running(marker: str) -> psutil.Process:
    """The pool process whose FFmpeg names ``marker``, once one runs."""
    procs.wait_until(lambda: bool(ffmpeg_processes(marker)), 120, interval_s=0.05, what=f"FFmpeg for {marker}")
    return ffmpeg_processes(marker)[0].parent()


def kill_part_mid_encode(client: redis.Redis, task: Task, source: str, fmt: dict[str, Any], *, queue: str,
                         marker: Callable[[str], str], while_retried: Callable[[str], None] = lambda job_id: None,
                         **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Send a split job, ``kill -9`` the pool process encoding part 2 (its FFmpeg names ``marker(job id)`` and
    dies with it by PDEATHSIG), run ``while_retried(job id)``, then wait for the job. Checks that part 2 was
    redelivered and succeeded; returns the job's id and result."""
    result, listener = send(client, task, source, fmt, queue=queue, **kwargs)
    try:
        pool_child_running(marker(result.id)).kill()
        while_retried(result.id)
        value: dict[str, Any] = result.get(timeout=300)
    finally:
        listener.close()
    assert task.AsyncResult(part_task_id(result.id, 2)).state == "SUCCESS"
    return result.id, value
