"""Split-and-stitch transcodes on real workers: several workers encode the parts of one job, and the result
is what a single encode would give (same frame count, duration within a frame, every seam where the
source had it), valid for ffprobe and for two independent parsers (mediainfo, mkvinfo).

Workers here run with SPLIT_MIN_S=3 and SPLIT_SEGMENT_S=2 so a 10-second clip with a keyframe every
second splits into five parts: the media stays tiny. The job itself goes to a queue private to the test
(its parts go to ``transcode_queue`` like in production), so a session worker with the default
SPLIT_MIN_S cannot take the job and encode it in one piece.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.result import AsyncResult

from geminivideo import client as job_client
from geminivideo import procs
from geminivideo.contracts import TaskStatus
from geminivideo.video.housekeeping.inuse import IN_USE_KEY
from geminivideo.video.split_transcode import part_task_id
from geminivideo.video.tasks import transcode_task
from tests.conftest import StartWorker
from tests.integration.video.support import (
    assert_progress_protocol,
    entries,
    kill_part_mid_encode,
    part_workers,
    partial_files,
    pool_child_running,
    run,
    send,
    start_split_workers,
    wait_no_ffmpeg,
    wait_status,
)
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

SplitWorkers = Callable[[int], str]

pytestmark = pytest.mark.slow


def _clip(test_env: HarnessEnv, name: str, size: str = "640x360", audio: bool = True) -> Path:
    """A fresh 10-second clip with a keyframe every second in the test's media folder."""
    return media.make_keyframed_source(test_env.media_dir / f"{name}-{uuid.uuid4().hex[:6]}.mp4", duration_s=10,
                                       size=size, audio=audio)


@contextlib.contextmanager
def _split_under_way(client: redis.Redis, queue: str, source: Path, fmt: dict[str, Any]) -> Iterator[AsyncResult]:
    """Send the job; yield it once it reports progress past the split (the parts are being encoded)."""
    result, listener = send(client, transcode_task, str(source), fmt, queue=queue)
    try:
        wait_status(client, result.id, [TaskStatus.PROCESSING], timeout_s=120, min_progress=5.0)
        yield result
    finally:
        listener.close()


@pytest.fixture
def split_workers(start_worker: StartWorker) -> SplitWorkers:
    """Start ``n`` transcode workers (concurrency 1) that split long inputs; return the job queue's name."""
    return lambda n: start_split_workers(start_worker, n, "split-test")


@pytest.mark.parametrize(("fmt", "audio"), [({"codec": "vp9", "container": "webm", "preset": "veryfast"}, True),
                                            ({"codec": "h264", "container": "mp4", "preset": "veryfast"}, True),
                                            ({"codec": "av1", "container": "mkv", "preset": "12"}, False)],
                         ids=["vp9-webm", "h264-mp4", "av1-mkv-no-audio"])
def test_split_across_two_workers_matches_a_single_encode(fmt: dict[str, Any], audio: bool, split_workers: SplitWorkers,
                                                          redis_client: redis.Redis, test_env: HarnessEnv) -> None:
    queue = split_workers(2)
    source = _clip(test_env, "split", "320x240", audio)
    temp_before = entries(test_env.temp_dir)
    outcome = run(redis_client, transcode_task, str(source), fmt, queue=queue, timeout_s=240)
    assert outcome.error is None, outcome.error
    result = outcome.value
    assert result["parts"] == 5 and result["codec"] == fmt["codec"] and result["container"] == fmt["container"]
    output = Path(result["output_path"])
    media.assert_like_single_encode(output, source)
    assert (result["audio_codec"] is not None) is audio
    assert len(part_workers(transcode_task, outcome.result.id, 5)) == 2, "both workers should have encoded parts"
    assert_progress_protocol(outcome.events, TaskStatus.COMPLETED)
    assert any("parts" in e.message for e in outcome.events), [e.message for e in outcome.events]
    assert entries(test_env.temp_dir) == temp_before and not partial_files(test_env.render_dir, test_env.temp_dir)


def test_part_whose_worker_is_killed_is_retried_and_output_stays_frame_exact(
    split_workers: SplitWorkers, redis_client: redis.Redis, test_env: HarnessEnv
) -> None:
    queue = split_workers(2)
    source = _clip(test_env, "kill")
    fmt = {"codec": "h264", "container": "mkv", "preset": "slower"}  # a part takes seconds: time to kill it

    def parts_folder(job_id: str) -> str:
        return f"{(test_env.temp_dir / f'split-{job_id}').resolve()}\0{job_id}"  # held by the job, not a part

    def held_until_the_stitch(job_id: str) -> None:
        expiry = redis_client.zscore(IN_USE_KEY, parts_folder(job_id))
        assert expiry is not None and expiry > time.time(), "the parts' folder should stay held for the stitch"

    job_id, value = kill_part_mid_encode(redis_client, transcode_task, str(source), fmt, queue=queue,
                                         marker=lambda job_id: f"split-{job_id}/source0002",
                                         while_retried=held_until_the_stitch)
    media.assert_like_single_encode(Path(value["output_path"]), source)
    assert redis_client.zscore(IN_USE_KEY, parts_folder(job_id)) is None, "released once the job is done"


def test_cancelling_a_split_job_stops_its_parts_and_removes_scratch(
    split_workers: SplitWorkers, redis_client: redis.Redis, test_env: HarnessEnv
) -> None:
    queue = split_workers(1)
    source = _clip(test_env, "cancel")
    temp_before = entries(test_env.temp_dir)
    fmt = {"codec": "h264", "container": "mkv", "preset": "veryslow"}
    with _split_under_way(redis_client, queue, source, fmt) as result:
        pool_child_running(f"split-{result.id}/source")
        state = job_client.cancel(result.id)
        assert state.status is TaskStatus.CANCELLED
    wait_no_ffmpeg(f"split-{result.id}", timeout_s=20)
    procs.wait_until(lambda: entries(test_env.temp_dir) == temp_before, 20, what="split scratch folder removed")
    assert not partial_files(test_env.render_dir)
    assert job_client.job_state(result.id).status is TaskStatus.CANCELLED


def test_a_part_that_keeps_failing_fails_the_job_once_and_cleans_up(
    split_workers: SplitWorkers, redis_client: redis.Redis, test_env: HarnessEnv
) -> None:
    queue = split_workers(1)
    source = _clip(test_env, "fail")
    temp_before = entries(test_env.temp_dir)
    fmt = {"codec": "h264", "container": "mkv", "preset": "slower"}
    with _split_under_way(redis_client, queue, source, fmt) as result:
        # Split done (parts run in order on the one worker): spoil the last part before it is encoded.
        (test_env.temp_dir / f"split-{result.id}" / "source0004.mkv").write_bytes(b"not a video any more")
        with pytest.raises(Exception, match="part 4"):
            result.get(timeout=240)
    failed = wait_status(redis_client, result.id, [TaskStatus.FAILED], timeout_s=30)
    assert "part 4" in failed.message
    assert transcode_task.AsyncResult(part_task_id(result.id, 4)).retries == 2  # retried alone before giving up
    procs.wait_until(lambda: entries(test_env.temp_dir) == temp_before, 30, what="split scratch folder removed")
    assert not partial_files(test_env.render_dir)
