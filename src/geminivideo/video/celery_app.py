"""The video Celery app: ``celery -A geminivideo.video.celery_app:app worker -Q render_queue,…``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from geminivideo.celery_base import AppSpec, TimeLimit, grace_limit, make_celery
from geminivideo.config import Settings
from geminivideo.contracts import VIDEO_QUEUE_ORDER, TaskName
from geminivideo.video.housekeeping.worker_monitor import ResourceMonitorStep


def time_limits(settings: Settings) -> Mapping[TaskName, TimeLimit]:
    return {
        TaskName.RENDER_VIDEO: grace_limit(settings.render_timeout),
        TaskName.GENERATE_PREVIEW: grace_limit(settings.preview_timeout),
        TaskName.TRANSCODE: grace_limit(settings.transcode_timeout),
        TaskName.TRANSCODE_SEGMENT: grace_limit(settings.transcode_timeout),
        TaskName.TRANSCODE_STITCH: grace_limit(settings.transcode_timeout),
        TaskName.TRANSCODE_SPLIT_FAILED: TimeLimit(60, 90),
        TaskName.CAPTION: grace_limit(settings.caption_timeout),
        TaskName.CLEANUP: TimeLimit(30 * 60, 31 * 60),
        TaskName.MONITOR_RESOURCES: TimeLimit(50, 55),
        TaskName.VIDEO_PING: TimeLimit(10, 15),
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Housekeeping: cleanup daily at 02:00 in BEAT_TIMEZONE (or every CLEANUP_INTERVAL_S), resources every
    MONITOR_INTERVAL_S. Both go to the ``maintenance`` queue, which every video worker lists first in its -Q:
    they take well under a second, so a free slot runs them before any waiting render."""
    cleanup_every: crontab | timedelta = crontab(hour=2, minute=0)
    if settings.cleanup_interval_s is not None:
        cleanup_every = timedelta(seconds=settings.cleanup_interval_s)
    monitor_every = settings.monitor_interval_s
    return {
        # all_hosts: the worker that takes it hands it on to every other video host (video/housekeeping/fleet.py).
        "cleanup-daily": {"task": str(TaskName.CLEANUP), "schedule": cleanup_every, "kwargs": {"all_hosts": True}},
        "monitor-resources": {
            "task": str(TaskName.MONITOR_RESOURCES),
            "schedule": timedelta(seconds=monitor_every),
            # A snapshot nobody took within its period is stale: drop it rather than run a backlog.
            "options": {"expires": max(1.0, monitor_every - 5)},
        },
    }


SPEC = AppSpec(
    name="video",
    include=("geminivideo.video.tasks", "geminivideo.video.split_tasks"),
    queues=VIDEO_QUEUE_ORDER,
    time_limits=time_limits,
    beat_schedule=beat_schedule,
)

app = make_celery(SPEC)
app.conf.worker_direct = True  # each worker also consumes <nodename>.dq2: the daily cleanup reaches every host
app.steps["worker"].add(ResourceMonitorStep)
