"""Getting a job's stored outputs back: ``GET /api/jobs/{id}/outputs`` and ``geminivideo fetch ID --to DIR``.

Given a transcode whose output went to the real store, when the API is asked for the job's outputs, then
it answers fresh presigned URLs that download the exact bytes (SHA-256 as recorded); when the CLI fetches
the job, the file lands in the folder, whole, and no partial file is left.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from botocore.client import BaseClient

from geminivideo import procs
from geminivideo.video.tasks import transcode_task
from tests.integration.video.support import run
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.usefixtures("storage_worker")


def test_outputs_endpoint_and_fetch_command(
    bucket: str, s3: BaseClient, redis_client: redis.Redis, test_env: HarnessEnv, store_env: dict[str, str],
    tmp_path: Path,
) -> None:
    s3.upload_file(str(media.make_video(tmp_path / "in.mp4", duration_s=1)), bucket, "in.mp4")
    done = run(redis_client, transcode_task, f"s3://{bucket}/in.mp4", {"codec": "h264"},
               output_url=f"s3://{bucket}/out/", timeout_s=120)
    assert done.error is None, done.error
    task_id = done.result.id
    stored = done.value["outputs"][0]

    env = test_env.process_env(**store_env)
    api, base = procs.start_api(env, tmp_path / "api.log")
    try:
        reply = httpx.get(f"{base}/api/jobs/{task_id}/outputs", timeout=10)
        missing = httpx.get(f"{base}/api/jobs/no-such-job/outputs", timeout=10)
    finally:
        api.stop()
    assert reply.status_code == 200, reply.text
    outputs = reply.json()["outputs"]
    assert [o["url"] for o in outputs] == [f"s3://{bucket}/out/transcode-h264.mp4"]
    assert "X-Amz-Signature=" in outputs[0]["download_url"]
    body = httpx.get(outputs[0]["download_url"], timeout=30).content
    assert hashlib.sha256(body).hexdigest() == stored["sha256"]
    assert missing.status_code == 404
    assert store_env["AWS_SECRET_ACCESS_KEY"] not in reply.text

    target = tmp_path / "fetched"
    cli = subprocess.run([sys.executable, "-m", "geminivideo.cli", "fetch", task_id, "--to", str(target)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    files = sorted(p.name for p in target.iterdir())
    assert files == ["transcode-h264.mp4"]
    assert hashlib.sha256((target / files[0]).read_bytes()).hexdigest() == stored["sha256"]
