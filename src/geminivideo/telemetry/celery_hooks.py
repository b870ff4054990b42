"""Celery signal handlers: task metrics, log context, queue-wait spans, and each process's telemetry set-up.

Connected once per process by ``install()`` (called from ``celery_base.make_celery``; Celery's signals are
process-wide, so one connection serves both apps). The sender stamps each message with the time it was sent
(header ``gv_sent_at``); the worker turns that into the queue-wait histogram and span.

Per process kind:
- sender (API, beat, CLI): the ``gv_sent_at`` header; traces carry on in the headers when tracing is on;
- worker main process (``worker_init``): the host's metrics exporter, before the pool forks;
- pool child (``worker_process_init``): tracing (each child needs its own exporter thread);
- every Celery process: LOG_FORMAT for the loggers Celery sets up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from typing import Any

from celery import signals
from celery.app import trace as celery_trace

from geminivideo.config import get_settings
from geminivideo.contracts import TaskName
from geminivideo.telemetry import exporter, logs, tracing
from geminivideo.telemetry.metrics import metrics, recording

log = logging.getLogger(__name__)

SENT_AT_HEADER = "gv_sent_at"
_SPEED_TASKS = {str(TaskName.RENDER_VIDEO), str(TaskName.TRANSCODE)}
_CAPTION_TASK = str(TaskName.CAPTION)
_INSTALLED: list[str] = []
_RUNNING: dict[str, tuple[float, Any, tuple[str, str]]] = {}  # task id -> (start, log token, labels)


def install() -> None:
    """Connect the handlers (idempotent)."""
    if _INSTALLED:
        return
    _INSTALLED.append("celery")
    signals.before_task_publish.connect(_stamp_sent_at, weak=False)
    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    signals.worker_init.connect(_worker_init, weak=False)
    signals.worker_process_init.connect(_worker_process_init, weak=False)
    signals.worker_shutdown.connect(_worker_shutdown, weak=False)
    signals.worker_process_shutdown.connect(_worker_process_shutdown, weak=False)
    signals.beat_init.connect(_beat_init, weak=False)
    signals.after_setup_logger.connect(_root_logger_ready, weak=False)
    signals.after_setup_task_logger.connect(_task_logger_ready, weak=False)
    # Celery's success line ends with the task's return value (deal values, attributions, paths): keep the
    # line, drop the value. The result stays in the result backend for whoever asked for it.
    celery_trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"


# ─── sender ───────────────────────────────────────────────────────────────────────────────────────
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()  # a retry is a new message: its wait starts now


# ─── process set-up ───────────────────────────────────────────────────────────────────────────────
def _worker_init(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    name = str(getattr(sender, "hostname", None) or "worker")
    exporter.start_host_exporter(settings, name)


def _worker_process_init(**_: Any) -> None:
    tracing.setup("geminivideo-worker", get_settings())


def _worker_process_shutdown(**_: Any) -> None:
    tracing.flush()  # a recycled pool child's last spans would otherwise die with it


def _worker_shutdown(**_: Any) -> None:
    exporter.stop_host_exporter()


def _beat_init(**_: Any) -> None:
    tracing.setup("geminivideo-beat", get_settings())


def _root_logger_ready(logger: logging.Logger | None = None, **_: Any) -> None:
    _apply_log_format(logger or logging.getLogger())
    logs.quiet_access_log()


def _task_logger_ready(logger: logging.Logger | None = None, **_: Any) -> None:
    _apply_log_format(logger or logging.getLogger("celery.task"))


def _apply_log_format(logger: logging.Logger) -> None:
    """JSON: our handler replaces Celery's; text: Celery's format stays, with the context filter added."""
    log_format = get_settings().log_format
    if log_format == "json" or not logger.handlers:
        logs.take_over(logger, log_format)
        return
    for handler in logger.handlers:
        if not any(isinstance(f, logs.ContextFilter) for f in handler.filters):
            handler.addFilter(logs.ContextFilter())


# ─── tasks ────────────────────────────────────────────────────────────────────────────────────────
def _labels(task: Any) -> tuple[str, str]:
    delivery = getattr(task.request, "delivery_info", None) or {}
    return str(task.name), str(delivery.get("routing_key") or "unknown")


def _tenant(args: Any, kwargs: Any) -> str | None:
    """The payload's tenant, when its first argument (or a keyword) names one; nothing else is read."""
    candidates = [kwargs or {}]
    if args and isinstance(args[0], dict):
        candidates.append(args[0])
    for source in candidates:
        for key in ("tenant_id", "tenantId", "tenant"):
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, str) and value:
                return value[:128]
    return None


def _waited_since(request: Any) -> float | None:
    """When the message became runnable: its send time, or its ETA when it was held for one."""
    sent = getattr(request, SENT_AT_HEADER, None)
    try:
        start = float(sent) if sent is not None else None
    except (TypeError, ValueError):
        return None
    eta = getattr(request, "eta", None)
    if start is not None and eta:
        with contextlib.suppress(ValueError):
            start = max(start, datetime.fromisoformat(str(eta)).timestamp())
    return start


def _task_started(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    request = task.request
    token = logs.bind(task_id=task_id, task_name=task.name, job_id=getattr(request, "root_id", None) or task_id,
                      attempt=int(getattr(request, "retries", 0) or 0) + 1, tenant=_tenant(args, kwargs))
    labels = _labels(task)
    _RUNNING[task_id] = (time.monotonic(), token, labels)
    since, now = _waited_since(request), time.time()
    if since is not None:
        tracing.record_span(f"queue_wait/{task.name}", int(since * 1e9), int(max(now, since) * 1e9),
                            tracing.context_from_headers(request), **{"messaging.destination.name": labels[1]})
    if not recording():
        return  # no exporter in this process: counting would only cost
    found = metrics()
    found.tasks_started.labels(*labels).inc()
    found.tasks_running.labels(*labels).inc()
    if since is not None:
        found.task_queue_wait.labels(*labels).observe(max(0.0, now - since))


def _task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, retval: Any = None,
                   **_: Any) -> None:
    started = _RUNNING.pop(task_id or "", None)
    if started is None:
        return
    start, token, labels = started
    logs.unbind(token)
    if not recording():
        return
    elapsed = time.monotonic() - start
    found = metrics()
    found.tasks_running.labels(*labels).dec()
    found.task_duration.labels(*labels).observe(elapsed)
    if state == "SUCCESS":
        found.tasks_succeeded.labels(*labels).inc()
        found.task_last_success.labels(labels[0]).set(time.time())
        _media_figures(labels[0], retval, elapsed)
    elif state == "RETRY":
        found.tasks_retried.labels(*labels).inc()
    elif state == "FAILURE":
        found.tasks_failed.labels(*labels).inc()


def _media_figures(task_name: str, result: Any, elapsed_s: float) -> None:
    """Render/transcode speed (output seconds per wall second) and caption real-time factor, from results.

    The real-time factor is Whisper's time over the audio (``transcribe_s``) per second of audio: the task's wall
    time also holds the download, probe, audio extraction, a first model load and the upload, which say nothing
    about how fast the model transcribes. A result without ``transcribe_s`` records no factor.
    """
    if not isinstance(result, dict):
        return
    duration = result.get("duration")
    if not isinstance(duration, int | float) or duration <= 0 or elapsed_s <= 0:
        return
    if task_name in _SPEED_TASKS:
        metrics().media_speed.labels(task_name).observe(duration / elapsed_s)
    elif task_name == _CAPTION_TASK:
        transcribe_s = result.get("transcribe_s")
        if isinstance(transcribe_s, int | float) and transcribe_s > 0:
            model = str(result.get("model") or "unknown")
            metrics().caption_rtf.labels(model).observe(float(transcribe_s) / duration)
