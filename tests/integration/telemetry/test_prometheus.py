"""A real Prometheus scrapes a real API and a real prefork worker host while transcodes run.

Given a private deployment (Redis, SQLite, API, one transcode worker with WORKER_METRICS_PORT and a metrics
folder) and a Prometheus server scraping both every second with the bearer token,
when three good transcodes and one corrupt input are submitted over HTTP and three messages wait in a queue
nobody consumes (at three different priority levels, so three Redis lists),
then Prometheus's query API returns exactly those counts, a duration histogram holding all four attempts,
and a queue depth of 3; and killing the pool child that ran them (the pool forks a replacement) loses nothing.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from celery import Celery

from geminivideo import procs
from geminivideo.contracts import QueueName, TaskName
from geminivideo.telemetry import celery_hooks
from tests.integration.telemetry.support import (
    TOKEN,
    Deployment,
    Prometheus,
    deployment,
    running_prometheus,
    wait_job,
)
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.timeout(300)

TRANSCODE = 'task="transcode_task"'


@dataclass
class Stack:
    deployment: Deployment
    api: str
    worker: procs.ManagedProcess
    worker_metrics: str
    prometheus: Prometheus
    good: Path
    corrupt: Path


@pytest.fixture(scope="module")
def stack(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("telemetry-prom")
    worker_port = procs.free_port()
    overrides = {"WORKER_METRICS_PORT": str(worker_port), "PROMETHEUS_MULTIPROC_DIR": str(root / "metrics"),
                 "LOG_FORMAT": "json", "RESOURCE_MONITOR_ON_WORKERS": "true", "MONITOR_INTERVAL_S": "2"}
    with deployment(test_env, root, **overrides) as deployed:
        api_env = {k: v for k, v in deployed.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # the API's own
        api_proc, api = procs.start_api(api_env, deployed.log("api.log"), ready_path="/health", require_ok=False)
        hostname = f"telemetry-transcode-{uuid.uuid4().hex[:6]}@localhost"
        worker = procs.start_worker("video", queues=[str(QueueName.TRANSCODE)], hostname=hostname, env=deployed.env,
                                    log_path=deployed.log("worker.log"), concurrency=1)
        good = media.make_video(test_env.media_dir / f"telemetry-{uuid.uuid4().hex[:6]}.mp4", duration_s=1,
                                size=(160, 120), audio=False)
        corrupt = test_env.media_dir / f"telemetry-corrupt-{uuid.uuid4().hex[:6]}.mp4"
        corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
        targets = {"api": api.removeprefix("http://"), "workers": f"127.0.0.1:{worker_port}"}
        try:
            with running_prometheus(root / "prometheus", targets, TOKEN) as prometheus:
                yield Stack(deployed, api, worker, f"http://127.0.0.1:{worker_port}/metrics", prometheus, good,
                            corrupt)
        finally:
            worker.stop()
            api_proc.stop()


def submit_transcode(api: str, path: Path) -> str:
    body = {"input_path": str(path), "output_format": {"codec": "h264", "container": "mp4", "preset": "ultrafast"}}
    response = httpx.post(f"{api}/api/video/transcode", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def park_messages(redis_url: str, queue: str, priorities: list[int]) -> None:
    """Messages for a queue no worker of this deployment consumes, one per transport priority level."""
    celery_hooks.install()  # the sender's gv_sent_at stamp, as every app made by make_celery has
    sender = Celery("telemetry-probe", broker=redis_url, set_as_current=False)
    sender.conf.broker_transport_options = {"priority_steps": list(range(10)), "queue_order_strategy": "priority"}
    try:
        for priority in priorities:
            sender.send_task(str(TaskName.GENERATE_PREVIEW), args=[{"video_path": "/nowhere.mp4"}], queue=queue,
                             routing_key=queue, priority=priority)
    finally:
        sender.close()


def test_prometheus_reads_exact_task_counts_queue_depth_and_durations(stack: Stack) -> None:
    ids = [submit_transcode(stack.api, stack.good) for _ in range(3)] + [submit_transcode(stack.api, stack.corrupt)]
    states = [wait_job(stack.api, task_id) for task_id in ids]
    assert [s["status"] for s in states] == ["completed"] * 3 + ["failed"], states
    park_messages(stack.deployment.env["REDIS_URL"], str(QueueName.PREVIEW), [0, 4, 9])
    client = redis.Redis.from_url(stack.deployment.env["REDIS_URL"])
    assert len([k for k in client.keys(f"{QueueName.PREVIEW}*") if client.type(k) == b"list"]) == 3
    client.close()

    prom = stack.prometheus
    # The job record turns final just before the worker counts the attempt: wait for the scrape that has it.
    prom.wait_value(f"sum(geminivideo_task_duration_seconds_count{{{TRANSCODE}}})", 4)
    assert prom.value(f"sum(geminivideo_tasks_succeeded_total{{{TRANSCODE}}})") == 3
    assert prom.value(f"sum(geminivideo_tasks_failed_total{{{TRANSCODE}}})") == 1
    assert prom.value(f"sum(geminivideo_tasks_started_total{{{TRANSCODE},queue=\"transcode_queue\"}})") == 4
    assert prom.value(f"sum(geminivideo_tasks_retried_total{{{TRANSCODE}}})") in (None, 0)
    assert prom.value(f'sum(geminivideo_task_duration_seconds_bucket{{{TRANSCODE},le="+Inf"}})') == 4
    assert (prom.value(f"sum(geminivideo_task_duration_seconds_sum{{{TRANSCODE}}})") or 0) > 0
    assert prom.value(f"sum(geminivideo_task_queue_wait_seconds_count{{{TRANSCODE}}})") == 4
    assert prom.value("sum(geminivideo_media_speed_ratio_count{task=\"transcode_task\"})") == 3
    assert prom.value(f"sum(geminivideo_tasks_running{{{TRANSCODE}}})") == 0
    assert prom.value(f'geminivideo_worker_up{{worker="{stack.worker.extra["hostname"]}"}}') == 1
    prom.wait_value('geminivideo_queue_messages{queue="preview_queue"}', 3)
    assert prom.value('geminivideo_queue_messages{queue="transcode_queue"}') == 0
    age = prom.value('geminivideo_queue_oldest_message_age_seconds{queue="preview_queue"}')
    assert age is not None and 0 < age < 120
    assert prom.value('sum(geminivideo_http_requests_total{route="/api/video/transcode",method="POST",status="202"})') \
        == 4
    assert prom.value('sum(geminivideo_http_request_duration_seconds_count{route="/api/video/transcode"})') == 4
    prom.wait_value("count(geminivideo_host_memory_usage_ratio)", 1)
    assert prom.value('up{job="api"}') == 1 and prom.value('up{job="workers"}') == 1


def test_killing_the_pool_child_that_ran_the_tasks_loses_no_count(stack: Stack) -> None:
    prom = stack.prometheus
    before = prom.wait_value(f"sum(geminivideo_tasks_succeeded_total{{{TRANSCODE}}})", 3)
    (child,) = psutil.Process(stack.worker.pid).children()
    os.kill(child.pid, signal.SIGKILL)
    procs.wait_until(lambda: [c.pid for c in psutil.Process(stack.worker.pid).children()] not in ([], [child.pid]),
                     30, what="the pool to fork a replacement child")
    time.sleep(3)  # a few scrapes with the killed child's files only
    assert prom.value(f"sum(geminivideo_tasks_succeeded_total{{{TRANSCODE}}})") == before

    assert wait_job(stack.api, submit_transcode(stack.api, stack.good))["status"] == "completed"
    prom.wait_value(f"sum(geminivideo_tasks_succeeded_total{{{TRANSCODE}}})", before + 1)
    prom.wait_value(f"sum(geminivideo_task_duration_seconds_count{{{TRANSCODE}}})", 5)
    assert prom.value(f"sum(resets(geminivideo_tasks_succeeded_total{{{TRANSCODE}}}[10m]))") == 0
    assert prom.value(f"sum(resets(geminivideo_tasks_started_total{{{TRANSCODE}}}[10m]))") == 0
    assert prom.value(f"sum(geminivideo_tasks_running{{{TRANSCODE}}})") == 0


def test_metrics_endpoints_refuse_requests_without_the_token(stack: Stack) -> None:
    assert httpx.get(f"{stack.api}/metrics", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{stack.api}/metrics", headers=wrong, timeout=10).status_code == 401
    assert httpx.get(stack.worker_metrics, timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answered = httpx.get(stack.worker_metrics, headers=bearer, timeout=10)
    assert answered.status_code == 200 and "geminivideo_tasks_started_total" in answered.text
    assert httpx.get(f"{stack.api}/metrics", headers=bearer, timeout=10).status_code == 200
