"""Every ``geminivideo_*`` Prometheus series a process records itself (Prometheus naming: base units, ``_total``).

The metric objects are built on the first call of ``metrics()``, never at import: a worker host first switches
``prometheus_client`` to multiprocess mode (``enable_multiprocess``) so that each prefork child writes its
values to files the host's exporter sums, including the counts of children that have since exited.
Gauges say how their per-process values combine (``multiprocess_mode``): ``livesum`` drops a dead child's
share (tasks running now), ``max`` keeps the newest timestamp of any process, ``mostrecent`` the latest sample.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram, values

PREFIX = "geminivideo"
TASK_LABELS = ("task", "queue")
# Seconds: a webhook batch takes ~10 ms, a render minutes; a queue wait can reach the visibility timeout.
DURATION_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Output (or audio) seconds per wall-clock second: FIELD-NOTES measured 0.08x (rav1e) to 2x+ (VP9 realtime).
SPEED_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


@dataclass(frozen=True)
class Metrics:
    """The series recorded in-process (workers, API); the ones computed at scrape time live in ``scrape``."""

    tasks_started: Counter
    tasks_succeeded: Counter
    tasks_failed: Counter
    tasks_retried: Counter
    task_duration: Histogram
    task_queue_wait: Histogram
    tasks_running: Gauge
    task_last_success: Gauge
    worker_up: Gauge
    media_speed: Histogram
    caption_rtf: Histogram
    webhook_received: Counter
    webhook_stored: Counter
    webhook_applied: Counter
    webhook_failed: Counter
    webhook_lag: Histogram
    approval_executions: Counter
    host_cpu: Gauge
    host_memory: Gauge
    host_disk: Gauge
    host_disk_free: Gauge
    host_gpu_memory: Gauge
    http_requests: Counter
    http_duration: Histogram


def _name(short: str) -> str:
    return f"{PREFIX}_{short}"


def _task_series() -> dict[str, object]:
    return {
        "tasks_started": Counter(_name("tasks_started"), "Tasks a worker started", TASK_LABELS),
        "tasks_succeeded": Counter(_name("tasks_succeeded"), "Tasks that returned a result", TASK_LABELS),
        "tasks_failed": Counter(_name("tasks_failed"), "Tasks that failed for good (no retry left)", TASK_LABELS),
        "tasks_retried": Counter(_name("tasks_retried"), "Task attempts that asked for a retry", TASK_LABELS),
        "task_duration": Histogram(_name("task_duration_seconds"), "Wall time of one task attempt", TASK_LABELS,
                                   buckets=DURATION_BUCKETS_S),
        "task_queue_wait": Histogram(_name("task_queue_wait_seconds"), "From sending a message to its task starting",
                                     TASK_LABELS, buckets=DURATION_BUCKETS_S),
        "tasks_running": Gauge(_name("tasks_running"), "Tasks running now", TASK_LABELS, multiprocess_mode="livesum"),
        "task_last_success": Gauge(_name("task_last_success_timestamp_seconds"), "When a task last succeeded",
                                   ("task",), multiprocess_mode="max"),
        "worker_up": Gauge(_name("worker_up"), "1 while the worker's main process runs", ("worker",),
                           multiprocess_mode="livemax"),
        "media_speed": Histogram(_name("media_speed_ratio"), "Output media seconds per wall-clock second",
                                 ("task",), buckets=SPEED_BUCKETS),
        "caption_rtf": Histogram(_name("caption_real_time_factor"), "Whisper transcription time per second of audio",
                                 ("model",), buckets=RTF_BUCKETS),
    }


def _webhook_series() -> dict[str, object]:
    return {
        "webhook_received": Counter(_name("webhook_events_received"), "Webhook events in accepted requests",
                                    ("source",)),
        "webhook_stored": Counter(_name("webhook_events_stored"), "Webhook events stored for the first time",
                                  ("source",)),
        "webhook_applied": Counter(_name("webhook_events_applied"), "Stored events applied (or found stale)",
                                   ("outcome",)),
        "webhook_failed": Counter(_name("webhook_events_failed"), "Stored events that failed for good"),
        "webhook_lag": Histogram(_name("webhook_apply_lag_seconds"), "From storing an event to applying it",
                                 buckets=DURATION_BUCKETS_S),
        "approval_executions": Counter(_name("approval_executions"), "Approved changes executed or blocked by a gate",
                                       ("outcome",)),
    }


def _host_series() -> dict[str, object]:
    # Several workers on one host sample the same figures: the latest sample of a live process is right.
    mode: Literal["livemostrecent"] = "livemostrecent"
    return {
        "host_cpu": Gauge(_name("host_cpu_usage_ratio"), "CPU busy, 0-1", ("host",), multiprocess_mode=mode),
        "host_memory": Gauge(_name("host_memory_usage_ratio"), "Memory used, 0-1", ("host",),
                             multiprocess_mode=mode),
        "host_disk": Gauge(_name("host_disk_usage_ratio"), "Filesystem used, 0-1", ("host", "mountpoint"),
                           multiprocess_mode=mode),
        "host_disk_free": Gauge(_name("host_disk_free_bytes"), "Filesystem free space", ("host", "mountpoint"),
                                multiprocess_mode=mode),
        "host_gpu_memory": Gauge(_name("host_gpu_memory_usage_ratio"), "GPU memory used, 0-1", ("host", "gpu"),
                                 multiprocess_mode=mode),
    }


def _http_series() -> dict[str, object]:
    return {
        "http_requests": Counter(_name("http_requests"), "HTTP requests answered", ("route", "method", "status")),
        "http_duration": Histogram(_name("http_request_duration_seconds"), "HTTP request latency",
                                   ("route", "method"), buckets=HTTP_BUCKETS_S),
    }


@functools.cache
def metrics() -> Metrics:
    """The process's metric objects, registered once in prometheus_client's default registry."""
    return Metrics(**_task_series(), **_webhook_series(), **_host_series(), **_http_series())  # type: ignore[arg-type]


_RECORDING: list[bool] = []


def enable_recording() -> None:
    """Count from now on in this process: a worker with an exporter, or the API (which serves its own)."""
    if not _RECORDING:
        _RECORDING.append(True)


def recording() -> bool:
    """Whether anyone will read this process's series; when not, recording them would only cost."""
    return bool(_RECORDING)


def multiprocess_dir() -> Path | None:
    """The folder this process writes its values to, when multiprocess mode is on."""
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


def enable_multiprocess(folder: Path) -> None:
    """Write values to ``folder`` from now on (this process and the children it forks).

    prometheus_client picks its value class from PROMETHEUS_MULTIPROC_DIR when first imported; a worker that
    imported it earlier (Flower, a library) is switched here, before any metric object exists.
    """
    if metrics.cache_info().currsize:
        raise RuntimeError("enable_multiprocess() must run before the first metrics() call in this process")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.MultiProcessValue()
    enable_recording()


def record_host_snapshot(snapshot: dict[str, object]) -> None:
    """Host gauges from a resource snapshot (``video.resources``), in ratios and bytes; only with an exporter."""
    if not recording():
        return
    found, host = metrics(), str(snapshot.get("hostname") or "unknown")
    cpu, memory = snapshot.get("cpu") or {}, snapshot.get("memory") or {}
    if isinstance(cpu, dict) and cpu.get("percent") is not None:
        found.host_cpu.labels(host).set(float(cpu["percent"]) / 100)
    if isinstance(memory, dict) and memory.get("percent") is not None:
        found.host_memory.labels(host).set(float(memory["percent"]) / 100)
    for disk in snapshot.get("disks") or []:  # type: ignore[attr-defined]
        found.host_disk.labels(host, disk["mountpoint"]).set(float(disk["percent"]) / 100)
        found.host_disk_free.labels(host, disk["mountpoint"]).set(float(disk["free_bytes"]))
    for gpu in snapshot.get("gpus") or []:  # type: ignore[attr-defined]
        if gpu.get("memory_percent") is not None:
            found.host_gpu_memory.labels(host, str(gpu["index"])).set(float(gpu["memory_percent"]) / 100)
