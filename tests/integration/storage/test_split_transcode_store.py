"""Split-and-stitch transcodes of ``s3://`` jobs on real workers and the real Swift store: the parts travel
through the store (``<output prefix>/split-<job id>/``), not through a shared TEMP_DIR.

Given a 10-second clip with a keyframe every second in a fresh bucket and workers with SPLIT_MIN_S=3 and
SPLIT_SEGMENT_S=2 (five parts), when it is transcoded to an ``s3://`` output, then the stored output is frame-exact
(frame count, duration, mediainfo, mkvinfo), both workers encoded parts, and neither the job's prefix in the
store nor a ``split-`` folder in TEMP_DIR is left (the folder the prefix was in is remembered for the daily
sweep); a part whose worker is killed with SIGKILL is redelivered and the output is still frame-exact; a
cancelled job's parts stop and its prefix is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from botocore.client import BaseClient

from geminivideo import client as job_client
from geminivideo import procs
from geminivideo.contracts import TaskStatus
from geminivideo.video.split_store import BASES_KEY
from geminivideo.video.tasks import transcode_task
from tests.conftest import StartWorker
from tests.integration.video.support import (
    kill_part_mid_encode,
    part_workers,
    pool_child_running,
    run,
    send,
    start_split_workers,
    wait_no_ffmpeg,
    wait_status,
)
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.slow

SplitWorkers = Callable[[int], str]


@pytest.fixture
def split_workers(start_worker: StartWorker, store_env: dict[str, str]) -> SplitWorkers:
    """Start ``n`` transcode workers (concurrency 1) that split long inputs and reach the store; return the job
    queue's name."""
    return lambda n: start_split_workers(start_worker, n, "split-s3", **store_env)


def _source(s3: BaseClient, bucket: str, tmp_path: Path, size: str) -> str:
    path = media.make_keyframed_source(tmp_path / "source.mp4", duration_s=10, size=size)
    s3.upload_file(str(path), bucket, "in/source.mp4")
    return f"s3://{bucket}/in/source.mp4"


def _keys(s3: BaseClient, bucket: str, prefix: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _split_folders(env: HarnessEnv) -> list[Path]:
    return sorted(env.temp_dir.glob("split-*"))


def _download(url: str, dest: Path) -> Path:
    reply = httpx.get(url, timeout=60)
    assert reply.status_code == 200, reply.text[:300]
    dest.write_bytes(reply.content)
    return dest


def test_split_of_an_s3_input_to_an_s3_output_across_two_workers_is_frame_exact(
    split_workers: SplitWorkers, bucket: str, s3: BaseClient, redis_client: redis.Redis, test_env: HarnessEnv,
    tmp_path: Path,
) -> None:
    queue = split_workers(2)
    source = _source(s3, bucket, tmp_path, "320x240")
    folders_before = _split_folders(test_env)
    fmt = {"codec": "vp9", "container": "webm", "preset": "veryfast"}

    outcome = run(redis_client, transcode_task, source, fmt, output_url=f"s3://{bucket}/jobs/s1/web.webm", queue=queue,
                  timeout_s=300)

    assert outcome.error is None, outcome.error
    result = outcome.value
    assert result["parts"] == 5 and result["output_url"] == f"s3://{bucket}/jobs/s1/web.webm"
    assert result["input_path"] == source
    output = _download(result["download_url"], tmp_path / "web.webm")
    media.assert_like_single_encode(output, tmp_path / "source.mp4")
    assert result["audio_codec"] == "opus"
    workers = part_workers(transcode_task, outcome.result.id, 5)
    assert len(workers) == 2, f"both workers should have encoded parts: {workers}"
    assert _keys(s3, bucket, "jobs/") == ["jobs/s1/web.webm"], "the job's split- prefix should be deleted"
    assert redis_client.zscore(BASES_KEY, f"s3://{bucket}/jobs/s1/") is not None, "cleanup should know the folder"
    assert _split_folders(test_env) == folders_before


def test_part_whose_worker_is_killed_is_redelivered_and_the_stored_output_stays_frame_exact(
    split_workers: SplitWorkers, bucket: str, s3: BaseClient, redis_client: redis.Redis, tmp_path: Path,
) -> None:
    queue = split_workers(2)
    source = _source(s3, bucket, tmp_path, "640x360")
    fmt = {"codec": "h264", "container": "mkv", "preset": "slower"}  # a part takes seconds: time to kill it
    job_id, value = kill_part_mid_encode(redis_client, transcode_task, source, fmt, queue=queue,
                                         marker=lambda job_id: f"split-{job_id}-part0002-",  # the part's own folder
                                         output_url=f"s3://{bucket}/jobs/k1/")
    assert value["output_url"] == f"s3://{bucket}/jobs/k1/transcode-h264.mkv"
    media.assert_like_single_encode(_download(value["download_url"], tmp_path / "out.mkv"), tmp_path / "source.mp4")
    assert _keys(s3, bucket, f"jobs/k1/split-{job_id}/") == []


def test_cancelling_a_store_split_job_stops_its_parts_and_deletes_its_prefix(
    split_workers: SplitWorkers, bucket: str, s3: BaseClient, redis_client: redis.Redis, test_env: HarnessEnv,
    tmp_path: Path,
) -> None:
    queue = split_workers(1)
    source = _source(s3, bucket, tmp_path, "640x360")
    folders_before = _split_folders(test_env)
    fmt = {"codec": "h264", "container": "mkv", "preset": "veryslow"}
    result, listener = send(redis_client, transcode_task, source, fmt, output_url=f"s3://{bucket}/jobs/c1/",
                            queue=queue)
    prefix = f"jobs/c1/split-{result.id}/"
    try:
        wait_status(redis_client, result.id, [TaskStatus.PROCESSING], timeout_s=120, min_progress=5.0)
        pool_child_running(f"split-{result.id}-part")
        assert len(_keys(s3, bucket, prefix)) >= 5, "the split parts should be in the store"
        state = job_client.cancel(result.id)
        assert state.status is TaskStatus.CANCELLED
    finally:
        listener.close()
    wait_no_ffmpeg(f"split-{result.id}", timeout_s=20)
    procs.wait_until(lambda: not _keys(s3, bucket, prefix), 30, what=f"{prefix} deleted from the store")
    procs.wait_until(lambda: _split_folders(test_env) == folders_before, 20, what="split folders removed")
    assert _keys(s3, bucket, "jobs/c1/") == []
    assert job_client.job_state(result.id).status is TaskStatus.CANCELLED
