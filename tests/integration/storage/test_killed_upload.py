"""A worker killed (kill -9) in the middle of a multipart upload of its output: nothing partial is ever visible.

Given a transcode whose ~26 MB output (above the 16 MiB multipart threshold) leaves the worker through a link
that carries requests at 2 MB/s, when a cleanup runs on the host during the upload, then it leaves the
output being uploaded alone (held in the in-use registry); when the worker's whole process group is then
killed with a multipart upload open, then no object exists at the output key; the task is redelivered
to a second worker (after the queue's visibility timeout), which aborts the stale upload and stores
exactly one object at the same key; and once the killed attempt's in-use lease has run out the next
cleanup removes the killed attempt's local copy and scratch: the host keeps no job file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from botocore.client import BaseClient

from geminivideo import procs
from geminivideo.contracts import CleanupJob
from geminivideo.video.housekeeping.cleanup import cleanup
from geminivideo.video.tasks import transcode_task
from tests.conftest import StartWorker
from tests.integration.storage.support import clean_until, killable_host, rescued
from tests.support import faults
from tests.support.env import applied
from tests.support.objectstore import SlowLink, StoreHandle

pytestmark = pytest.mark.slow

UP_RATE = 2 * 1024 * 1024  # request bytes/s per connection: each 16 MiB part takes ~8 s to send
KEY = "out/transcode-h264.mp4"


def _noise_video(path: Path) -> Path:
    """4 s of 480x360 noise as raw video: encoded losslessly it stays ~26 MB, so it goes up in two parts."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:s=480x360:r=25:d=4,noise=alls=100:allf=t+u", "-c:v", "rawvideo",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def _open_uploads(s3: BaseClient, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_worker_killed_mid_upload_leaves_no_object_and_next_attempt_replaces_it(
    bucket: str, s3: BaseClient, object_store: StoreHandle, store_env: dict[str, str], start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    s3.upload_file(str(_noise_video(tmp_path / "noise.mkv")), bucket, "in/noise.mkv")
    host = killable_host(tmp_path, store_env, transcode_timeout_s=120)
    link = SlowLink(object_store.port, up_rate_bytes_s=UP_RATE)
    try:
        first = start_worker("video", name="slow-up", queues=["transcode_queue"],
                             **{**host.env, "S3_ENDPOINT_URL": link.endpoint})
        sent = transcode_task.apply_async(args=[f"s3://{bucket}/in/noise.mkv", {"codec": "h264", "crf": 0}],
                                          kwargs={"output_url": f"s3://{bucket}/out/"})
        procs.wait_until(lambda: _open_uploads(s3, bucket) == [KEY], 180, interval_s=0.2,
                         what="the output's multipart upload under way")
        # Given a cleanup on this host while the upload runs (every age limit at zero), the output stays.
        with applied(host.env):
            swept = cleanup(CleanupJob(max_age_days=0))
        uploading = [p for p in host.folder("RENDER_DIR").rglob("*") if p.is_file()]
        assert len(uploading) == 1 and uploading[0].stat().st_size > 16 * 1024 * 1024, (swept, uploading)
        assert swept.skipped_in_use >= 1 and swept.deleted_count == 0, swept
        assert first.alive() and _open_uploads(s3, bucket) == [KEY], "the upload ended before the kill"
        faults.kill9(first)
    finally:
        link.close()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="out/")  # nothing visible at the key
    assert _open_uploads(s3, bucket) == [KEY]  # the killed attempt's upload is still open

    result = rescued(start_worker, host, sent, timeout_s=180)

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]
    assert [o["Key"] for o in listed] == [KEY] and result["output_url"] == f"s3://{bucket}/{KEY}"
    stored = s3.head_object(Bucket=bucket, Key=KEY)
    assert stored["ContentLength"] == result["outputs"][0]["size"] > 16 * 1024 * 1024
    assert stored["Metadata"]["task-id"] == sent.id and stored["Metadata"]["sha256"] == result["outputs"][0]["sha256"]
    assert _open_uploads(s3, bucket) == []  # the stale upload was aborted, not left to cost space
    try:
        clean_until(lambda: not host.files(), "cleanup of the killed attempt's files after its lease ran out")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; left on the host: {host.files()}") from None
