"""Given real workers on a real Redis, when a ping task is sent to each app, then each answers."""

from __future__ import annotations

from geminivideo import procs
from geminivideo.ml.tasks import ml_ping
from geminivideo.video.tasks import video_ping


def test_each_app_runs_a_task_on_a_real_worker(video_worker: procs.ManagedProcess,
                                               ml_worker: procs.ManagedProcess) -> None:
    video = video_ping.delay("hello-video").get(timeout=30)
    ml = ml_ping.delay("hello-ml").get(timeout=30)
    assert video["echo"] == "hello-video" and video["app"] == "video"
    assert ml["echo"] == "hello-ml" and ml["app"] == "ml"
    assert video["hostname"] == video_worker.extra["hostname"]
    assert ml["hostname"] == ml_worker.extra["hostname"]
