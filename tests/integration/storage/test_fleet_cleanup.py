"""The daily cleanup reaches every video host, and each host sweeps the object store's stale uploads.

Given two video workers standing for two hosts (each its own RESOURCE_HOSTNAME and its own TEMP_DIR,
RENDER_DIR, PREVIEW_DIR) and a multipart upload a killed task left under OUTPUT_URL, when the beat's
``cleanup_task(all_hosts=True)`` reaches host A, then A hands it to B through B's direct queue, both
hosts' old files are gone, fresh ones stay, and the stale upload is aborted.

Given split-transcode parts in the store under ``<OUTPUT_URL>split-<job id>/`` and under another folder a split
job used (remembered in ``split_store_bases``) of a job whose plan record is gone (a killed stitch), and parts of
a job still running, when cleanup runs, then the gone job's prefixes are deleted once nothing in them changed
for CLEANUP_PARTIAL_AGE_S, the running job's parts and every other object stay, and a folder no job used for
longer than a plan record lives is forgotten.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import redis
from botocore.client import BaseClient
from celery.utils.nodenames import worker_direct

from geminivideo import procs
from geminivideo.video.split_store import BASES_KEY
from geminivideo.video.tasks import cleanup_task
from tests.conftest import StartWorker

DAY_S = 86_400


def _host_dirs(root: Path) -> dict[str, str]:
    dirs = {"TEMP_DIR": root / "tmp", "RENDER_DIR": root / "renders", "PREVIEW_DIR": root / "previews"}
    for path in dirs.values():
        path.mkdir(parents=True)
    return {**{k: str(v) for k, v in dirs.items()}, "MEDIA_ROOTS": ":".join(str(v) for v in dirs.values())}


def _old_and_new(root: Path) -> tuple[Path, Path]:
    old = root / "renders" / "old.mp4"
    old.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 3 * DAY_S, time.time() - 3 * DAY_S))
    new = root / "previews" / "new.jpg"
    new.write_bytes(b"y")
    return old, new


@pytest.mark.usefixtures("object_store")
def test_daily_cleanup_reaches_every_host_and_aborts_stale_uploads(
    bucket: str, s3: BaseClient, store_env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    s3.create_multipart_upload(Bucket=bucket, Key="out/killed-task/render.mp4")
    common = {**store_env, "OUTPUT_URL": f"s3://{bucket}/out/", "CLEANUP_PARTIAL_AGE_S": "0",
              "RESOURCE_MONITOR_ON_WORKERS": "false"}
    hosts = {}
    for name in ("host-a", "host-b"):
        env = {**common, **_host_dirs(tmp_path / name), "RESOURCE_HOSTNAME": name}
        hosts[name] = start_worker("video", name=name, queues=["maintenance"], **env)
    files = {name: _old_and_new(tmp_path / name) for name in hosts}
    node_a, node_b = (str(hosts[n].extra["hostname"]) for n in ("host-a", "host-b"))

    report = cleanup_task.apply_async(kwargs={"all_hosts": True, "max_age_days": 1},
                                      queue=worker_direct(node_a)).get(timeout=60)

    assert report["host"] == "host-a" and node_b in report["dispatched_to"], report
    assert str(files["host-a"][0]) in report["deleted_files"]
    procs.wait_until(lambda: not files["host-b"][0].exists(), 30, what="host B's own cleanup")
    assert all(new.exists() for _, new in files.values())  # fresh files stay on both hosts
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.usefixtures("object_store")
def test_cleanup_deletes_the_store_parts_of_split_jobs_that_are_gone_and_keeps_the_rest(
    bucket: str, s3: BaseClient, store_env: dict[str, str], start_worker: StartWorker, redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    gone, running = (f"test-{uuid.uuid4().hex[:12]}" for _ in range(2))
    keys = sorted([f"out/split-{gone}/part0000.mkv", f"out/split-{gone}/part0001.mkv", f"out/split-{gone}/audio.mka",
                   f"custom/split-{gone}/part0000.mkv",  # under the folder of a job's own output_url
                   f"out/split-{running}/part0000.mkv",
                   "out/split-notes.txt",  # an object, not a split's prefix
                   f"out/{gone}/transcode-vp9.webm",  # the job's output
                   f"elsewhere/split-{gone}/part0000.mkv"])  # a folder no split job used
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"part")
    redis_client.set(f"split_transcode:{running}", "{}", ex=600)  # the running job's plan record
    custom, old = f"s3://{bucket}/custom/", f"s3://{bucket}/old/"
    redis_client.zadd(BASES_KEY, {custom: time.time(), old: time.time() - 3 * DAY_S})  # as splitters record them
    nodes = {}
    for age in ("3600", "0"):
        env = {**store_env, **_host_dirs(tmp_path / f"host-{age}"), "OUTPUT_URL": f"s3://{bucket}/out/",
               "CLEANUP_PARTIAL_AGE_S": age, "RESOURCE_MONITOR_ON_WORKERS": "false"}
        nodes[age] = str(start_worker("video", name=f"sweep-{age}", queues=["maintenance"], **env).extra["hostname"])

    def stored() -> list[str]:
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))

    try:
        young = cleanup_task.apply_async(kwargs={}, queue=worker_direct(nodes["3600"])).get(timeout=60)
        assert young["failed"] == [] and stored() == keys, "parts changed within the hour stay"
        assert redis_client.zscore(BASES_KEY, old) is None and redis_client.zscore(BASES_KEY, custom) is not None
        due = cleanup_task.apply_async(kwargs={}, queue=worker_direct(nodes["0"])).get(timeout=60)
    finally:
        redis_client.delete(f"split_transcode:{running}")
        redis_client.zrem(BASES_KEY, custom, old)
    assert due["failed"] == []
    assert stored() == [key for key in keys if f"/split-{gone}/" not in key or key.startswith("elsewhere/")]
