"""Real workers on a real Redis: registration, routing, queue precedence, payload errors, bad settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from geminivideo import procs
from geminivideo.celery_base import make_celery, transport_priority
from geminivideo.contracts import ML_TASKS, VIDEO_TASKS, TaskStatus
from geminivideo.ml.celery_app import app as ml_app
from geminivideo.progress import follow
from geminivideo.video.celery_app import SPEC as video_spec
from geminivideo.video.celery_app import app as video_app
from geminivideo.video.tasks import render_video_task
from tests.conftest import StartWorker
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*
from tests.support.env import applied


def _inspect(app: Celery, hostname: str) -> Any:  # celery.app.control.Inspect, untyped
    return app.control.inspect(destination=[hostname], timeout=5)


def test_every_task_is_registered_on_a_live_worker(video_worker: procs.ManagedProcess,
                                                   ml_worker: procs.ManagedProcess) -> None:
    for app, worker, expected in ((video_app, video_worker, VIDEO_TASKS), (ml_app, ml_worker, ML_TASKS)):
        hostname = str(worker.extra["hostname"])
        registered = _inspect(app, hostname).registered()[hostname]
        assert {str(t) for t in expected} <= set(registered)


def test_workers_consume_their_queues_most_urgent_first(video_worker: procs.ManagedProcess) -> None:
    hostname = str(video_worker.extra["hostname"])
    queues = [q["name"] for q in _inspect(video_app, hostname).active_queues()[hostname]]
    # Last, the worker's own direct queue (<nodename>.dq2): how the daily cleanup reaches every host.
    assert queues == ["maintenance", "render_queue", "transcode_queue", "caption_queue", "preview_queue",
                      f"{hostname}.dq2"]


@pytest.fixture
def isolated_broker(test_env: HarnessEnv) -> Iterator[tuple[str, Celery]]:
    """A Redis database no session worker listens on, and a fresh video app bound to it."""
    url = test_env.redis_url.rsplit("/", 1)[0] + "/7"
    with applied({"REDIS_URL": url}):
        app = make_celery(video_spec)
        assert app.conf.broker_url == url  # configured now, while REDIS_URL points at the isolated database
        yield url, app
    redis.Redis.from_url(url).flushdb()
    app.close()


def _send(app: Celery, task: str, args: tuple[Any, ...], seed_priority: int) -> AsyncResult:
    return app.send_task(task, args, priority=transport_priority(seed_priority, broker_is_redis=True))


def _finish_order(app: Celery, results: list[AsyncResult]) -> list[str]:
    done = {}
    for result in results:
        with pytest.raises(Exception):  # noqa: B017  (each fails: its input does not exist)
            result.get(timeout=60)
        done[result.id] = app.AsyncResult(result.id).date_done
    return sorted(done, key=lambda task_id: done[task_id])


def test_render_overtakes_queued_previews(start_worker: StartWorker, test_env: HarnessEnv, isolated_broker: tuple[str,
                                          Celery]) -> None:
    """Given 20 previews queued before 1 render, a worker on all video queues starts the render first."""
    url, app = isolated_broker
    missing = str(test_env.media_dir / "does-not-exist.mp4")
    previews = [_send(app, "generate_preview_task", (missing, 2), 5) for _ in range(20)]
    render = _send(app, "render_video_task", ({"scenes": [{"video_path": missing}]},), 10)
    start_worker("video", concurrency=1, name="precedence", REDIS_URL=url)
    order = _finish_order(app, [render, *previews])
    # prefetch 1: at most the one preview already reserved may run before the render.
    assert order.index(render.id) <= 1


def test_per_message_priority_inside_one_queue(start_worker: StartWorker, test_env: HarnessEnv,
                                               isolated_broker: tuple[str, Celery]) -> None:
    url, app = isolated_broker
    missing = str(test_env.media_dir / "nothing-here.mp4")
    low = [_send(app, "generate_preview_task", (missing, 2), 1) for _ in range(6)]
    urgent = _send(app, "generate_preview_task", (missing, 2), 10)
    start_worker("video", queues=["preview_queue"], concurrency=1, name="msgprio", REDIS_URL=url)
    order = _finish_order(app, [*low, urgent])
    assert order.index(urgent.id) <= 1


def test_bad_payload_fails_at_once_without_retry(video_worker: procs.ManagedProcess, redis_client: redis.Redis) -> None:
    result = render_video_task.delay({"scenes": [], "output_format": {"width": -5}})
    with pytest.raises(Exception) as caught:
        result.get(timeout=30)
    assert "scenes" in str(caught.value) and "output_format.width" in str(caught.value)
    assert type(caught.value).__name__ == "InvalidPayload"
    assert result.state == "FAILURE" and (result.info is not None)
    status = list(follow(redis_client, result.id, timeout_s=10))[-1]
    assert status.status is TaskStatus.FAILED
    assert "InvalidPayload" in status.message
    time.sleep(1)
    assert result.state == "FAILURE"  # not RETRY


def test_arguments_that_do_not_fit_the_task_are_refused_as_an_invalid_payload(
    video_worker: procs.ManagedProcess, redis_client: redis.Redis,
) -> None:
    # send_task, not .delay: .delay would refuse the call in this process before anything reached a worker.
    result = video_app.send_task("transcode_task", args=["in.mp4"], kwargs={"codec": "h264"}, queue="transcode_queue")
    with pytest.raises(Exception) as caught:
        result.get(timeout=30)
    assert type(caught.value).__name__ == "InvalidPayload", caught.value
    assert "unexpected keyword argument 'codec'" in str(caught.value)
    assert "takes (input_path, output_format=None, output_url=None)" in str(caught.value)
    assert list(follow(redis_client, result.id, timeout_s=10))[-1].status is TaskStatus.FAILED


def test_bad_setting_stops_the_worker_naming_the_variable(test_env: HarnessEnv, tmp_path: Path) -> None:
    argv = procs.celery_argv("video", queues=["render_queue"], concurrency=1, hostname="bad@localhost")
    proc = procs.spawn("bad-worker", argv, env=test_env.process_env(RENDER_TIMEOUT="abc"), log_path=tmp_path / "w.log")
    try:
        code = proc.popen.wait(timeout=60)
    finally:
        proc.stop()
    assert code != 0
    log = (tmp_path / "w.log").read_text()
    assert "RENDER_TIMEOUT" in log and "valid integer" in log
