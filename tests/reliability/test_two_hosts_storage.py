"""Two hosts that share no folder: media moves only through the object store.

Given two "hosts" (network namespaces, each with its own video worker and its own TEMP_DIR, RENDER_DIR,
PREVIEW_DIR and winner-index folder) that reach Redis and the Swift store only at the machine's end of
their links, when host A renders from ``s3://`` scenes to an ``s3://`` output and host B previews,
transcodes and captions that output, then every result is readable through its presigned URL, the daily
cleanup sent to A reaches B too and both hosts' folders hold no job file, and a winner index saved on A
answers the same search on B (each host loads the version the store's pointer names). A split transcode
whose parts run on both hosts carries its parts through the store and gives a frame-exact output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery.utils.nodenames import worker_direct

from geminivideo import procs
from tests.reliability.conftest import MakeDeployment
from tests.support import media, netns
from tests.support.objectstore import SlowLink, StoreHandle, start_store

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

INDEX_SCRIPT = """
import json, sys
import numpy as np
from geminivideo.ml.winners import index as winner_index
store = winner_index.get_store()
rng = np.random.default_rng(7)
vectors = rng.standard_normal((40, 384)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
if sys.argv[1] == "save":
    index = store.load_for_write()
    winner_index.upsert(index, range(1, 41), vectors)
    with store.write_lock():
        store.save(index)
print(json.dumps(winner_index.search(store.current(), vectors[3:4], 5)))
"""


@pytest.fixture
def hosts() -> Iterator[list[netns.Host]]:
    try:
        with netns.private_network(2) as made:
            yield made
    except netns.NetnsUnavailable as exc:
        pytest.fail(f"two-hosts scenario needs network namespaces and veth pairs (root, iproute2): {exc}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreHandle]:
    handle = start_store(tmp_path / "objectstore")
    yield handle
    handle.stop()


def _job_files(root: Path) -> list[Path]:
    """Files in the host's media folders (its winner-index folder is not a job's)."""
    return [p for p in root.rglob("*") if p.is_file() and "winner_index" not in p.parts]


@pytest.mark.timeout(900)
def test_render_on_a_then_preview_transcode_caption_on_b_through_the_store(
    hosts: list[netns.Host], store: StoreHandle, deployment: MakeDeployment, tmp_path: Path
) -> None:
    dep = deployment()
    client = dep.client()
    client.config_set("bind", f"127.0.0.1 {hosts[0].host_ip} {hosts[1].host_ip}")
    client.config_set("protected-mode", "no")
    bucket = f"gvt-{uuid.uuid4().hex[:12]}"
    s3 = store.client()
    s3.create_bucket(Bucket=bucket)
    links = [SlowLink(store.port, bind=h.host_ip) for h in hosts]
    roots = [tmp_path / f"host-{n}" for n in "ab"]
    try:
        def env_for(i: int) -> dict[str, str]:
            dirs = {k: str(roots[i] / k.lower()) for k in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
            return {**dep.env, **dirs, **store.env([bucket]), "MEDIA_ROOTS": ":".join(dirs.values()),
                    "REDIS_URL": f"redis://{hosts[i].host_ip}:{dep.redis.port}/0",
                    "S3_ENDPOINT_URL": links[i].endpoint, "OUTPUT_URL": f"s3://{bucket}/jobs/",
                    "INDEX_URL": f"s3://{bucket}/index/", "WINNER_INDEX_PATH": str(roots[i] / "winner_index"),
                    "RESOURCE_HOSTNAME": f"host-{'ab'[i]}", "CLEANUP_PARTIAL_AGE_S": "0"}

        worker_a = dep.track(netns.start_worker_in(hosts[0], "video", queues=["maintenance", "render_queue"],
                                                   env=env_for(0), log_dir=dep.log_dir, name="host-a"))
        dep.track(netns.start_worker_in(hosts[1], "video", env=env_for(1), log_dir=dep.log_dir, name="host-b",
                                        queues=["maintenance", "transcode_queue", "caption_queue", "preview_queue"]))
        scenes = []
        for name in ("a.mp4", "b.mp4"):
            s3.upload_file(str(media.make_video(tmp_path / name, duration_s=1.5)), bucket, f"in/{name}")
            scenes.append({"video_path": f"s3://{bucket}/in/{name}"})

        rendered = dep.send("video", "render_video_task", [{"scenes": scenes, "output_format": {
            "width": 320, "height": 240, "fps": 25}}], queue="render_queue").get(timeout=300)
        output = rendered["output_url"]
        preview = dep.send("video", "generate_preview_task", [output, 3], {"sprite": True},
                           queue="preview_queue").get(timeout=300)
        transcoded = dep.send("video", "transcode_task", [output, {"codec": "vp9", "container": "webm"}],
                              queue="transcode_queue").get(timeout=300)
        captioned = dep.send("video", "caption_task", [output], {"model": "tiny.en"},
                             queue="caption_queue").get(timeout=300)

        for result in (rendered, preview, transcoded, captioned):
            for item in result["outputs"]:
                body = httpx.get(item["download_url"], timeout=30).content
                assert len(body) == item["size"], item["url"]
        assert output.startswith(f"s3://{bucket}/jobs/") and transcoded["input_path"] == output

        report = dep.send("video", "cleanup_task", kwargs={"all_hosts": True, "max_age_days": 0},
                          queue=worker_direct(str(worker_a.extra["hostname"]))).get(timeout=120)
        assert any("host-b" in node for node in report["dispatched_to"]), report
        procs.wait_until(lambda: not any(_job_files(root) for root in roots), 60, what="no job file on either host")

        searches = []
        for i, action in ((0, "save"), (1, "load")):
            argv = hosts[i].exec_argv([sys.executable, "-c", INDEX_SCRIPT, action])
            done = subprocess.run(argv, env=env_for(i), capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
            searches.append(json.loads(done.stdout.strip().splitlines()[-1]))
        assert searches[0] == searches[1] and searches[0][0][0][0] == 4
    finally:
        for link in links:
            link.close()


@pytest.mark.timeout(600)
def test_split_transcode_with_parts_on_both_hosts_goes_through_the_store(
    hosts: list[netns.Host], store: StoreHandle, deployment: MakeDeployment, tmp_path: Path
) -> None:
    dep = deployment()
    client = dep.client()
    client.config_set("bind", f"127.0.0.1 {hosts[0].host_ip} {hosts[1].host_ip}")
    client.config_set("protected-mode", "no")
    bucket = f"gvt-{uuid.uuid4().hex[:12]}"
    s3 = store.client()
    s3.create_bucket(Bucket=bucket)
    links = [SlowLink(store.port, bind=h.host_ip) for h in hosts]
    roots = [tmp_path / f"host-{n}" for n in "ab"]
    job_queue = f"split-job-{uuid.uuid4().hex[:6]}"  # only host A splits; both hosts encode parts
    try:
        for i, host in enumerate(hosts):
            dirs = {k: str(roots[i] / k.lower()) for k in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
            env = {**dep.env, **dirs, **store.env([bucket]), "MEDIA_ROOTS": ":".join(dirs.values()),
                   "REDIS_URL": f"redis://{host.host_ip}:{dep.redis.port}/0", "S3_ENDPOINT_URL": links[i].endpoint,
                   "OUTPUT_URL": f"s3://{bucket}/jobs/", "SPLIT_MIN_S": "3", "SPLIT_SEGMENT_S": "2"}
            queues = [job_queue, "transcode_queue"] if i == 0 else ["transcode_queue"]
            dep.track(netns.start_worker_in(host, "video", queues=queues, env=env, log_dir=dep.log_dir,
                                            name=f"split-{'ab'[i]}"))
        source = media.make_keyframed_source(tmp_path / "source.mp4", duration_s=10, size="320x240")
        s3.upload_file(str(source), bucket, "in/source.mp4")

        job = dep.send("video", "transcode_task", [f"s3://{bucket}/in/source.mp4",
                                                  {"codec": "vp9", "container": "webm", "preset": "veryfast"}],
                       queue=job_queue)
        result = job.get(timeout=400)

        assert result["parts"] == 5 and result["output_url"].startswith(f"s3://{bucket}/jobs/{job.id}/")
        output = tmp_path / "out.webm"
        output.write_bytes(httpx.get(result["download_url"], timeout=60).content)
        media.assert_like_single_encode(output, source)
        workers = {str(dep.app("video").AsyncResult(f"{job.id}-part{i:04d}").worker) for i in range(5)}
        assert {w.rsplit("@", 1)[1] for w in workers} == {h.namespace for h in hosts}, workers
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="jobs/").get("Contents", [])
        assert [o["Key"] for o in listed] == [f"jobs/{job.id}/transcode-vp9.webm"], "split- prefix left behind"
        procs.wait_until(lambda: not any(_job_files(root) for root in roots), 30, what="no job file on either host")
    finally:
        for link in links:
            link.close()
