"""A task's time limits come from the worker's settings, not from whoever sent the message."""

from __future__ import annotations

import json

import redis

from geminivideo.video.tasks import render_video_task, video_ping
from tests.conftest import StartWorker
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*


def test_sender_limits_are_not_put_in_the_message(test_env: HarnessEnv) -> None:
    """Given a sender whose RENDER_TIMEOUT is 3600, the queued message carries no time limit."""
    url = test_env.redis_url.rsplit("/", 1)[0] + "/8"
    client = redis.Redis.from_url(url)
    client.flushdb()
    assert render_video_task.soft_time_limit == 3600
    with render_video_task.app.connection_for_write(url) as connection:
        render_video_task.apply_async(({"scenes": []},), connection=connection)
    queued = [key for key in client.keys("render_queue*") if client.type(key) == b"list"]
    assert queued, "the message did not reach render_queue"
    message = json.loads(client.lindex(queued[0], 0))  # type: ignore[arg-type]
    assert message["headers"]["timelimit"] == [None, None]
    client.flushdb()
    client.close()


def test_worker_settings_decide_the_limit(start_worker: StartWorker) -> None:
    worker = start_worker("video", queues=["maintenance"], name="limits", RENDER_TIMEOUT="7")
    hostname = str(worker.extra["hostname"])
    registered = video_ping.app.control.inspect(destination=[hostname], timeout=5).registered("soft_time_limit")
    assert "render_video_task [soft_time_limit=7]" in registered[hostname]
