"""A worker killed (kill -9) in the middle of an s3:// download: the next attempt starts clean.

Given a transcode whose 11 MB input reaches the worker through a slow link, when the worker's whole
process group is killed while the input is half downloaded, then no output object exists, the task is
redelivered to a second worker (after the queue's visibility timeout) and completes with exactly one
output object, and once the killed attempt's in-use lease has run out the next cleanup removes its
half-downloaded scratch folder: the host keeps no job files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from botocore.client import BaseClient

from geminivideo import procs
from geminivideo.video.tasks import transcode_task
from tests.conftest import StartWorker
from tests.integration.storage.support import clean_until, killable_host, rescued
from tests.support import faults
from tests.support.objectstore import SlowLink, StoreHandle

pytestmark = pytest.mark.slow

RATE = 2 * 1024 * 1024  # bytes/s through the slow link: the 11 MB input takes ~5 s


def _raw_video(path: Path) -> Path:
    """4 s of 320x240 raw video in Matroska: big (11 MB) yet instant to make and to transcode."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=4",
                    "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def _staged(temp_dir: Path) -> list[Path]:
    return [p for p in temp_dir.glob("s3in-*/*") if p.is_file()]


def test_worker_killed_mid_download_next_attempt_starts_clean(
    bucket: str, s3: BaseClient, object_store: StoreHandle, store_env: dict[str, str], start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    s3.upload_file(str(_raw_video(tmp_path / "raw.mkv")), bucket, "in/raw.mkv")
    host = killable_host(tmp_path, store_env, transcode_timeout_s=15)
    temp_dir = host.folder("TEMP_DIR")
    link = SlowLink(object_store.port, RATE)
    try:
        first = start_worker("video", name="slow", queues=["transcode_queue"],
                             **{**host.env, "S3_ENDPOINT_URL": link.endpoint})
        sent = transcode_task.apply_async(args=[f"s3://{bucket}/in/raw.mkv", {"codec": "h264"}],
                                          kwargs={"output_url": f"s3://{bucket}/out/"})
        procs.wait_until(lambda: any(p.stat().st_size > 1_000_000 for p in _staged(temp_dir)), 60,
                         what="the input half downloaded")
        faults.kill9(first)
    finally:
        link.close()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="out/")  # nothing visible

    result = rescued(start_worker, host, sent, timeout_s=150)

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]]
    assert keys == ["out/transcode-h264.mp4"] and result["output_url"] == f"s3://{bucket}/out/transcode-h264.mp4"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    clean_until(lambda: not list(temp_dir.iterdir()), "cleanup of the killed attempt's scratch after its lease ran out")
    assert not any(host.folder("RENDER_DIR").iterdir())
