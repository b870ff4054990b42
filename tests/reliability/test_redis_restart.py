"""Given Redis with AOF (as in docker-compose.yml), a worker mid-task, 20 tasks queued, a beat and the API, when
Redis is killed with ``kill -9`` and started again on the same port, then no queued task is lost, the running task
completes once and its progress publishing resumes, and the worker, the beat and the API reconnect by themselves.

Given Redis with persistence off, the same restart loses every queued task (measured, for the README).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from geminivideo.contracts import TaskStatus
from geminivideo.progress import read_status
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import faults

pytestmark = [pytest.mark.reliability]

QUEUED = 20


def _restart_redis(dep: Deployment, down_s: float) -> float:
    time.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
    dep.redis.kill()
    time.sleep(down_s)
    dep.redis.start()
    return time.time()


def _snapshot_at(dep: Deployment) -> float:
    raw = dep.client().get("system_resources")
    if raw is None:
        return 0.0
    from datetime import datetime

    return datetime.fromisoformat(json.loads(raw)["timestamp"]).timestamp()


@pytest.mark.slow
def test_aof_redis_restart_loses_nothing_and_everyone_reconnects(deployment: MakeDeployment) -> None:
    dep = deployment(appendonly=True, MONITOR_INTERVAL_S="2", RENDER_TIMEOUT="60")
    worker = dep.worker("video", ["maintenance", "render_queue"], name="survivor", concurrency=2)
    beat = dep.track(faults.start_beat("video", env=dep.env, log_path=dep.log_dir / "beat.log"))
    api, base = faults.start_api(dep.env, dep.log_dir / "api.log")
    dep.track(api)
    faults.wait_for(lambda: _snapshot_at(dep) > 0, 60, "the beat's first resource snapshot")

    running = dep.probe("video", "running", 12, queue="render_queue")
    faults.wait_for(lambda: dep.starts("running"), 30, "long task started")
    queued = [dep.probe("video", f"queued-{i}", 0.1, queue="transcode_queue") for i in range(QUEUED)]
    restarted_at = _restart_redis(dep, down_s=3)

    assert dep.client().llen("transcode_queue") == QUEUED, "queued tasks lost across the restart"
    # The running task's progress resumes on the new Redis, and it completes once.
    faults.wait_for(lambda: (e := read_status(dep.client(), running.id)) is not None
                    and e.timestamp.timestamp() > restarted_at, 30, "progress published after the restart")
    assert running.get(timeout=120)["key"] == "running"
    # The worker reconnected: it takes new work; a new worker drains the surviving queue.
    assert dep.probe("video", "after", 0.1, queue="render_queue").get(timeout=60)["hostname"] == \
        worker.extra["hostname"]
    dep.worker("video", ["transcode_queue"], name="drainer", concurrency=2)
    for result in queued:
        result.get(timeout=120)
    assert all(len(dep.done(f"queued-{i}")) == 1 for i in range(QUEUED))
    # The beat reconnected: a snapshot newer than the restart; the API answers healthy again.
    faults.wait_for(lambda: _snapshot_at(dep) > restarted_at, 60, "a resource snapshot after the restart")
    faults.wait_for(lambda: httpx.get(base + "/health", timeout=10).status_code == 200, 60, "API healthy again")
    assert beat.alive() and worker.alive() and api.alive()
    time.sleep(3)
    assert len(dep.done("running")) == 1 and len(dep.starts("running")) == 1, dep.starts("running")
    # Acked through the reconnected worker: nothing left for a visibility sweep to run a second time.
    faults.wait_for(lambda: dep.client().zcard("unacked_index:video") == 0, 10, "every delivery acked")
    faults.wait_for(lambda: dep.status(running.id) is TaskStatus.COMPLETED, 10, "progress completed")
    print(f"redis kill -9 + restart with AOF: {QUEUED}/{QUEUED} queued tasks survived, running task completed once")


def test_redis_without_persistence_loses_the_queue(deployment: MakeDeployment) -> None:
    dep = deployment(appendonly=False)
    for i in range(QUEUED):
        dep.probe("video", f"lost-{i}", 0.1, queue="transcode_queue")
    client = dep.client()
    assert client.llen("transcode_queue") == QUEUED
    _restart_redis(dep, down_s=0.5)
    client = dep.client()
    survived = client.llen("transcode_queue")
    statuses = len(client.keys("task_status:*"))
    print(f"redis kill -9 + restart without persistence: {survived}/{QUEUED} queued tasks and {statuses} progress "
          "records survived")
    assert survived == 0 and statuses == 0
