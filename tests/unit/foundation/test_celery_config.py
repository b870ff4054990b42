"""The shared Celery defaults of DESIGN.md §3, read from the built configuration of both apps."""

from __future__ import annotations

import subprocess
import sys

import pytest
from celery.schedules import crontab

from geminivideo.celery_base import AppSpec, build_config
from geminivideo.config import Settings
from geminivideo.contracts import ML_TASKS, TASK_QUEUE, VIDEO_TASKS
from geminivideo.ml import celery_app as ml_app
from geminivideo.video import celery_app as video_app


@pytest.fixture
def settings() -> Settings:
    return Settings(redis_url="redis://127.0.0.1:6399/0", render_timeout=3600)


@pytest.mark.parametrize("spec", [ml_app.SPEC, video_app.SPEC], ids=["ml", "video"])
def test_reliable_defaults(spec: AppSpec, settings: Settings) -> None:
    conf = build_config(spec, settings)
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == ["json"]
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["result_expires"] == 24 * 3600
    assert conf["broker_connection_retry_on_startup"]
    assert conf["broker_transport_options"]["queue_order_strategy"] == "priority"
    hard_limits = [a["time_limit"] for a in conf["task_annotations"].values()]
    soft_limits = [a["soft_time_limit"] for a in conf["task_annotations"].values()]
    assert all(soft < hard for soft, hard in zip(soft_limits, hard_limits, strict=True))
    # Visibility is a renewed lease, independent of the time limits (tests/reliability/test_redelivery.py).
    assert conf["broker_transport_options"]["visibility_timeout"] == settings.lease_timeout_s < max(hard_limits)
    assert conf["result_backend"] == "geminivideo.leases.backend:FencedRedisBackend+" + settings.result_backend
    assert conf["beat_scheduler"] == "geminivideo.beat:ResilientRedBeatScheduler"
    assert conf["redbeat_key_prefix"] == f"redbeat:{spec.name}:"


def test_every_task_has_limits_and_a_route(settings: Settings) -> None:
    for spec, tasks in ((ml_app.SPEC, ML_TASKS), (video_app.SPEC, VIDEO_TASKS)):
        conf = build_config(spec, settings)
        for task in tasks:
            assert str(task) in conf["task_annotations"], task
            assert conf["task_routes"][str(task)] == {"queue": str(TASK_QUEUE[task])}


def test_visibility_is_one_lease_per_app_with_its_own_index(settings: Settings) -> None:
    ml = build_config(ml_app.SPEC, settings)["broker_transport_options"]
    video = build_config(video_app.SPEC, settings)["broker_transport_options"]
    assert ml["visibility_timeout"] == video["visibility_timeout"] == 60  # a lease, whatever the task's length
    assert ml["lease_renew_interval"] == video["lease_renew_interval"] == 15
    assert ml["unacked_index_key"] != video["unacked_index_key"]


def test_rabbitmq_consumers_ask_for_a_timeout_above_their_queues_limits() -> None:
    amqp = Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:5672//", render_timeout=3600)
    queues = {q.name: q for q in build_config(video_app.SPEC, amqp)["task_queues"]}
    render_ms = queues["render_queue"].consumer_arguments["x-consumer-timeout"]
    assert render_ms == (3780 + 300 + 60) * 1000  # hard limit + longest retry countdown + VISIBILITY_MARGIN_S
    assert queues["preview_queue"].consumer_arguments["x-consumer-timeout"] < render_ms


def test_render_limits_follow_render_timeout() -> None:
    conf = build_config(video_app.SPEC, Settings(render_timeout=120))
    assert conf["task_annotations"]["render_video_task"] == {"soft_time_limit": 120, "time_limit": 150}


def test_beat_schedules(settings: Settings) -> None:
    ml = build_config(ml_app.SPEC, settings)["beat_schedule"]
    video = build_config(video_app.SPEC, settings)["beat_schedule"]
    fatigue = next(e for e in ml.values() if e["task"] == "monitor_all_ads_fatigue")["schedule"]
    winners = next(e for e in ml.values() if e["task"] == "auto_index_winners")["schedule"]
    cleanup = next(e for e in video.values() if e["task"] == "cleanup_task")["schedule"]
    resources = next(e for e in video.values() if e["task"] == "monitor_resources_task")["schedule"]
    assert isinstance(fatigue, crontab) and fatigue.hour == set(range(0, 24, 6))
    assert isinstance(winners, crontab) and winners.hour == {0, 12}
    assert isinstance(cleanup, crontab) and cleanup.hour == {2} and cleanup.minute == {0}
    assert resources.total_seconds() == 60


def test_amqp_broker_declares_priority_queues() -> None:
    conf = build_config(video_app.SPEC, Settings(celery_broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    assert conf["broker_transport_options"] == {}
    assert all(q.queue_arguments == {"x-max-priority": 10} for q in conf["task_queues"])


def test_importing_an_app_reads_no_settings() -> None:
    code = ("import os; os.environ['RENDER_TIMEOUT'] = 'abc'; import geminivideo.video.tasks, geminivideo.ml.tasks;"
            " from geminivideo.video.celery_app import app; print(app.configured)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
