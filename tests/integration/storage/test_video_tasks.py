"""Video tasks with s3:// inputs and outputs, on a real worker, real FFmpeg and the real Swift store.

Given scenes, an overlay image and an SRT in a fresh bucket, when a render is sent with an s3:// output,
then the verified output is in the bucket (SHA-256 and task id in its metadata, readable through its
presigned URL), the worker's RENDER_DIR and TEMP_DIR keep nothing, and preview, transcode and captions
of that output land under their own prefixes. Faults: a missing key fails at once naming the URI; a
bucket outside STORAGE_BUCKETS is refused; a store that is down makes the task retry until it is back.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest
import redis
from botocore.client import BaseClient

from geminivideo.contracts import TaskStatus
from geminivideo.errors import MediaUnreadable
from geminivideo.video.tasks import caption_task, generate_preview_task, render_video_task, transcode_task
from tests.integration.video.support import run, send, wait_status
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv
from tests.support.objectstore import StoreHandle

pytestmark = pytest.mark.usefixtures("storage_worker")


def _put(s3: BaseClient, bucket: str, key: str, path: Path) -> str:
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def _job_files(env: HarnessEnv) -> list[Path]:
    """Job files left on the worker's disk (the session's other tests may leave their own local outputs)."""
    staged = [p for p in env.temp_dir.glob("s3in-*")]
    return staged + [p for p in env.render_dir.glob("*") if "s3-" in p.name]


def test_render_from_s3_to_s3_then_preview_transcode_caption_on_the_output(
    bucket: str, s3: BaseClient, redis_client: redis.Redis, test_env: HarnessEnv, tmp_path: Path
) -> None:
    scene_a = _put(s3, bucket, "in/a.mp4", media.make_video(tmp_path / "a.mp4", duration_s=1.5))
    scene_b = _put(s3, bucket, "in/b.webm", media.make_video(tmp_path / "b.webm", duration_s=1.5, size=(240, 320)))
    logo = _put(s3, bucket, "in/logo.png", media.make_image(tmp_path / "logo.png"))
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n", encoding="utf-8")
    subs = _put(s3, bucket, "in/subs.srt", srt)
    job = {"scenes": [{"video_path": scene_a}, {"video_path": scene_b}, {"video_path": scene_a}],
           "overlays": [{"type": "image", "path": logo}], "subtitles": subs,
           "output_format": {"width": 320, "height": 240, "fps": 25}, "output_name": "s3-ad",
           "output_url": f"s3://{bucket}/jobs/r1/"}

    rendered = run(redis_client, render_video_task, job, timeout_s=180)

    assert rendered.error is None, rendered.error
    result = rendered.value
    assert result["output_url"] == result["output_path"] == f"s3://{bucket}/jobs/r1/s3-ad.mp4"
    body = httpx.get(result["download_url"], timeout=30).content
    head = s3.head_object(Bucket=bucket, Key="jobs/r1/s3-ad.mp4")
    assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest() == result["outputs"][0]["sha256"]
    assert head["Metadata"]["task-id"] == rendered.result.id and head["ContentType"] == "video/mp4"
    (tmp_path / "out.mp4").write_bytes(body)
    assert media.ffprobe(tmp_path / "out.mp4").size == (320, 240)
    assert _job_files(test_env) == []

    output = result["output_url"]
    preview = run(redis_client, generate_preview_task, output, 4, sprite=True, output_url=f"s3://{bucket}/jobs/r1/preview/")
    assert preview.error is None, preview.error
    keys = {o["url"] for o in preview.value["outputs"]}
    assert f"s3://{bucket}/jobs/r1/preview/thumbnails.vtt" in keys and len(keys) == 4 + 2
    assert preview.value["preview_paths"][0] == f"s3://{bucket}/jobs/r1/preview/frame_001.jpg"

    transcoded = run(redis_client, transcode_task, output, {"codec": "vp9", "container": "webm"},
                     output_url=f"s3://{bucket}/jobs/r1/web.webm", timeout_s=180)
    assert transcoded.error is None, transcoded.error
    assert transcoded.value["output_url"] == f"s3://{bucket}/jobs/r1/web.webm"
    assert transcoded.value["input_path"] == output
    assert httpx.get(transcoded.value["download_url"], timeout=30).status_code == 200

    captioned = run(redis_client, caption_task, output, model="tiny.en", formats=["srt", "vtt", "json"],
                    output_url=f"s3://{bucket}/jobs/r1/captions/", timeout_s=180)
    assert captioned.error is None, captioned.error
    assert captioned.value["srt_path"] == f"s3://{bucket}/jobs/r1/captions/captions.srt"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="jobs/r1/captions/")["Contents"]}
    assert listed == {f"jobs/r1/captions/captions.{fmt}" for fmt in ("srt", "vtt", "json")}
    assert _job_files(test_env) == []


def test_missing_key_fails_at_once_naming_the_uri(bucket: str, redis_client: redis.Redis) -> None:
    uri = f"s3://{bucket}/nothing/here.mp4"
    outcome = run(redis_client, transcode_task, uri, {"codec": "h264"}, output_url=f"s3://{bucket}/out/")
    assert isinstance(outcome.error, MediaUnreadable) and uri in str(outcome.error)
    assert TaskStatus.RETRYING not in outcome.statuses


def test_bucket_outside_the_allow_list_is_refused(redis_client: redis.Redis) -> None:
    outcome = run(redis_client, generate_preview_task, "s3://not-our-bucket/a.mp4", 2)
    assert outcome.error is not None and "not in STORAGE_BUCKETS" in str(outcome.error)
    assert TaskStatus.RETRYING not in outcome.statuses


def test_store_down_then_restarted_retries_and_completes(
    bucket: str, s3: BaseClient, object_store: StoreHandle, redis_client: redis.Redis, tmp_path: Path
) -> None:
    source = _put(s3, bucket, "in/clip.mp4", media.make_video(tmp_path / "clip.mp4", duration_s=1))
    object_store.stop()
    try:
        result, listener = send(redis_client, generate_preview_task, source, 2, output_url=f"s3://{bucket}/p/")
        wait_status(redis_client, result.id, {TaskStatus.RETRYING}, timeout_s=60)
    finally:
        object_store.restart()
    started = time.monotonic()
    value = result.get(timeout=120)
    listener.close()
    assert value["num_frames"] == 2 and value["outputs"], value
    assert time.monotonic() - started < 120
