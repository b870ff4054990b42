"""Cancellation and time limits kill FFmpeg's whole group and leave no partial output or temp file.

Given a render or transcode busy encoding a 30 s clip (progress from FFmpeg already published), when it
is revoked with terminate, then the status becomes ``cancelled``; when its time limit (RENDER_TIMEOUT /
TRANSCODE_TIMEOUT = 3 s on a worker of its own) fires, the status becomes ``failed``. Either way no
FFmpeg process of the task survives, no partial file is in RENDER_DIR and nothing new is in TEMP_DIR.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from celery.result import AsyncResult

from geminivideo import procs
from geminivideo.contracts import TaskStatus
from geminivideo.video.tasks import render_video_task, transcode_task
from tests.conftest import StartWorker
from tests.integration.video.conftest import Clips
from tests.integration.video.support import (
    entries,
    ffmpeg_processes,
    partial_files,
    send,
    stored_status,
    wait_no_ffmpeg,
    wait_status,
)
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.slow

# Slow on purpose: 30 s of video upscaled to 640x480 with x264 "slow" takes far longer than the test waits.
SLOW_RENDER = {"width": 640, "height": 480, "fps": 30, "preset": "slow"}


def _render_job(clips: Clips, name: str) -> dict:
    return {"scenes": [{"video_path": str(clips.long)}], "output_format": SLOW_RENDER, "output_name": name,
            "normalize_audio": False}


def _assert_nothing_left(test_env: HarnessEnv, temp_before: set[str], name: str, marker: str) -> None:
    # "cancelled" is published by the worker's main process at once; the pool process cleans up just after.
    wait_no_ffmpeg(marker)
    procs.wait_until(lambda: not partial_files(test_env.render_dir) and entries(test_env.temp_dir) == temp_before,
                     timeout_s=10, what="partial output and scratch folder removed")
    assert not (test_env.render_dir / name).exists()


def test_revoke_with_terminate_kills_ffmpeg_and_cancels(video_worker: procs.ManagedProcess, clips: Clips,
                                                        redis_client: redis.Redis,
                                                        test_env: HarnessEnv) -> None:
    name = f"cancel-{uuid.uuid4().hex[:8]}.mp4"
    temp_before = entries(test_env.temp_dir)
    result, listener = send(redis_client, render_video_task, _render_job(clips, name))
    try:
        # FFmpeg's own -progress has moved the bar past the setup steps: the encode is running.
        busy = wait_status(redis_client, result.id, [TaskStatus.PROCESSING], timeout_s=90, min_progress=10.5)
        assert busy.message.startswith("render:")
        assert ffmpeg_processes(name.removesuffix(".mp4")), "the render's FFmpeg should be running"
        result.revoke(terminate=True, signal="SIGTERM")
        final = wait_status(redis_client, result.id, [TaskStatus.CANCELLED, TaskStatus.FAILED], timeout_s=30)
        assert final.status is TaskStatus.CANCELLED, final
        _assert_nothing_left(test_env, temp_before, name, name.removesuffix(".mp4"))
        assert stored_status(redis_client, result.id).status is TaskStatus.CANCELLED  # not overwritten later
        listener.until_final(timeout_s=5)
        values = [e.progress for e in listener.events]
        assert values == sorted(values)
    finally:
        listener.close()


def test_time_limits_kill_ffmpeg_and_fail(start_worker: StartWorker, clips: Clips, redis_client: redis.Redis,
                                          test_env: HarnessEnv) -> None:
    queue = f"limits-{uuid.uuid4().hex[:8]}"
    start_worker("video", queues=[queue], concurrency=1, name="limits", RENDER_TIMEOUT="3", TRANSCODE_TIMEOUT="3")
    temp_before = entries(test_env.temp_dir)
    name = f"limit-{uuid.uuid4().hex[:8]}.mp4"
    render, render_listener = send(redis_client, render_video_task, _render_job(clips, name), queue=queue)
    render_listener.close()
    _assert_failed_by_limit(redis_client, render)
    _assert_nothing_left(test_env, temp_before, name, name.removesuffix(".mp4"))

    transcode, transcode_listener = send(redis_client, transcode_task, str(clips.long),
                                         {"codec": "h265", "preset": "slow", "width": 640}, queue=queue)
    transcode_listener.close()
    _assert_failed_by_limit(redis_client, transcode)
    wait_no_ffmpeg(str(clips.long))
    procs.wait_until(lambda: not partial_files(test_env.render_dir), timeout_s=10, what="partial output removed")


def _assert_failed_by_limit(redis_client: redis.Redis, result: AsyncResult) -> None:
    final = wait_status(redis_client, result.id, [TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.COMPLETED],
                        timeout_s=60)
    assert final.status is TaskStatus.FAILED, final
    assert "time limit" in final.message or "SoftTimeLimitExceeded" in final.message, final.message
    assert "TIMEOUT=3 s" in final.message or "SoftTimeLimitExceeded" in final.message, final.message
    with pytest.raises(Exception):  # noqa: B017  (ProcessingFailed or SoftTimeLimitExceeded, whichever fired first)
        result.get(timeout=10)
