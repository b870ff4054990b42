"""The ML Celery app: ``celery -A geminivideo.ml.celery_app:app worker -Q hubspot-webhook-events,…``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from geminivideo.celery_base import AppSpec, TimeLimit, make_celery
from geminivideo.config import Settings
from geminivideo.contracts import ML_QUEUE_ORDER, TaskName

_LONG_SCAN = TimeLimit(30 * 60, 35 * 60)
_SHORT = TimeLimit(60, 90)


def time_limits(settings: Settings) -> Mapping[TaskName, TimeLimit]:
    return {
        TaskName.PROCESS_HUBSPOT_WEBHOOK: _SHORT,
        # Up to 100 events; when the soft limit fires the rest continue in a new message.
        TaskName.PROCESS_HUBSPOT_EVENTS: TimeLimit(120, 150),
        TaskName.MONITOR_ALL_ADS_FATIGUE: _LONG_SCAN,
        TaskName.MONITOR_FATIGUE: _LONG_SCAN,
        TaskName.AUTO_INDEX_WINNERS: _LONG_SCAN,
        TaskName.AUTO_INDEX_WINNER: _SHORT,
        TaskName.EXECUTE_APPROVED_CHANGES: TimeLimit(120, 150),
        TaskName.SWEEP_WEBHOOK_EVENTS: TimeLimit(120, 150),
        TaskName.SYNC_AD_METRICS: _LONG_SCAN,  # async report jobs can take minutes to finish
        TaskName.ML_PING: TimeLimit(10, 15),
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "monitor-fatigue-6h": {
            "task": str(TaskName.MONITOR_ALL_ADS_FATIGUE),
            "schedule": crontab(minute=0, hour="*/6"),
        },
        "index-winners-12h": {
            "task": str(TaskName.AUTO_INDEX_WINNERS),
            "schedule": crontab(minute=30, hour="*/12"),
        },
        "sweep-webhook-events": {
            "task": str(TaskName.SWEEP_WEBHOOK_EVENTS),
            "schedule": timedelta(minutes=5),
            "options": {"expires": 240},
        },
        # Approved changes go out within a few minutes; SKIP LOCKED claiming makes overlapping runs safe.
        "execute-approved-changes": {
            "task": str(TaskName.EXECUTE_APPROVED_CHANGES),
            "schedule": timedelta(minutes=2),
            "options": {"expires": 110},
        },
        # Ad-platform insights, last META_SYNC_DAYS days each hour (late corrections arrive too).
        "sync-ad-metrics-hourly": {
            "task": str(TaskName.SYNC_AD_METRICS),
            "schedule": crontab(minute=15),
            "options": {"expires": 50 * 60},
        },
    }


SPEC = AppSpec(
    name="ml",
    include=("geminivideo.ml.tasks",),
    queues=ML_QUEUE_ORDER,
    time_limits=time_limits,
    beat_schedule=beat_schedule,
)

app = make_celery(SPEC)
