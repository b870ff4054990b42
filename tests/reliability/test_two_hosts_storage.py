"""Two hosts that share no folder: media moves only through the object store.

Given two "hosts" (network namespaces, each with its own video worker and its own TEMP_DIR, RENDER_DIR,
PREVIEW_DIR and winner-index folder) that reach Redis and the Swift store only at the machine's end of
their links, when host A renders from ``s3://`` scenes to an ``s3://`` output and host B previews,
transcodes and captions that output, then every result is readable through its presigned URL, the daily
cleanup sent to A reaches B too and both hosts' folders hold no job file; and when host A's ML worker
rebuilds the winner index (INDEX_URL in the store), then host B's API answers a winner search exactly as
host A's API does, best match first (each host loads the version the store's pointer names); and a split
transcode whose parts run on both hosts carries its parts through the store and gives a frame-exact output.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.utils.nodenames import worker_direct
from sqlalchemy import delete

from geminivideo import procs
from geminivideo.db.models import Ad, Tenant
from geminivideo.db.session import session_scope
from tests.integration.winners.conftest import CINEMATIC, REVIEW, UGC, Shop
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import media, netns
from tests.support.objectstore import SlowLink, StoreHandle, start_store

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

QUERY = "UGC testimonial with fast cuts and a green text CTA"
API_SECRET = "two-hosts-" + uuid.uuid4().hex


@pytest.fixture
def shop() -> Iterator[Shop]:
    """Three winners with creative DNA (and a loser) of a tenant of their own, in the deployment's database."""
    made = Shop(f"w{uuid.uuid4().hex[:10]}")
    with session_scope() as session:
        session.add(Tenant(id=made.tenant_id, name=made.tenant_id))
    yield made
    with session_scope() as session:  # ON DELETE CASCADE takes metrics, DNA and index entries with the ads
        session.execute(delete(Ad).where(Ad.tenant_id == made.tenant_id))
        session.execute(delete(Tenant).where(Tenant.id == made.tenant_id))


def _api_in(host: netns.Host, env: dict[str, str], log_dir: Path, name: str) -> tuple[procs.ManagedProcess, str]:
    """The API served inside ``host``'s namespace on its own address, reached from the machine's side."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "uvicorn", "geminivideo.api:app", "--host", host.ns_ip, "--port", str(port),
            "--log-level", "warning"]
    proc = procs.spawn(name, host.exec_argv(argv), env=env, log_path=log_dir / f"{name}.log")
    base = f"http://{host.ns_ip}:{port}"

    def answers() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited at start:\n{proc.log_tail()}")
        try:
            return httpx.get(base + "/openapi.json", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    procs.wait_until(answers, 90, interval_s=0.5, what=f"{name} answering on {base}")
    return proc, base


def _search(base: str, tenant_id: str) -> dict[str, Any]:
    reply = httpx.get(base + "/api/ml/rag/search-winners", params={"q": QUERY, "k": 3, "tenant_id": tenant_id},
                      headers={"X-API-Key": API_SECRET}, timeout=120)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


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


@dataclass
class Fleet:
    """A deployment whose Redis answers on both hosts' links, a fresh bucket reached through one link per host,
    and a media root per host that shares nothing with the other."""

    dep: Deployment
    hosts: list[netns.Host]
    store: StoreHandle
    bucket: str
    links: list[SlowLink]
    roots: list[Path]

    def env_for(self, i: int, **extra: str) -> dict[str, str]:
        """Host ``i``'s worker environment: its own folders, Redis and the store at the machine's end of its link."""
        dirs = {k: str(self.roots[i] / k.lower()) for k in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
        return {**self.dep.env, **dirs, **self.store.env([self.bucket]), "MEDIA_ROOTS": ":".join(dirs.values()),
                "REDIS_URL": f"redis://{self.hosts[i].host_ip}:{self.dep.redis.port}/0",
                "S3_ENDPOINT_URL": self.links[i].endpoint, "OUTPUT_URL": f"s3://{self.bucket}/jobs/", **extra}


@pytest.fixture
def fleet(hosts: list[netns.Host], store: StoreHandle, deployment: MakeDeployment, tmp_path: Path) -> Iterator[Fleet]:
    dep = deployment()
    client = dep.client()
    client.config_set("bind", f"127.0.0.1 {hosts[0].host_ip} {hosts[1].host_ip}")
    client.config_set("protected-mode", "no")
    bucket = f"gvt-{uuid.uuid4().hex[:12]}"
    store.client().create_bucket(Bucket=bucket)
    links = [SlowLink(store.port, bind=h.host_ip) for h in hosts]
    try:
        yield Fleet(dep, hosts, store, bucket, links, [tmp_path / f"host-{n}" for n in "ab"])
    finally:
        for link in links:
            link.close()


@pytest.mark.timeout(900)
def test_render_on_a_then_preview_transcode_caption_on_b_through_the_store(
    fleet: Fleet, shop: Shop, tmp_path: Path
) -> None:
    dep, hosts, roots, bucket = fleet.dep, fleet.hosts, fleet.roots, fleet.bucket
    s3 = fleet.store.client()

    def env_for(i: int) -> dict[str, str]:
        return fleet.env_for(i, INDEX_URL=f"s3://{bucket}/index/", WINNER_INDEX_PATH=str(roots[i] / "winner_index"),
                             RESOURCE_HOSTNAME=f"host-{'ab'[i]}", CLEANUP_PARTIAL_AGE_S="0")

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

    winners = [shop.ad("ugc", spend=200, value=1000, dna=UGC), shop.ad("review", spend=200, value=800, dna=REVIEW),
               shop.ad("cinematic", spend=300, value=1200, dna=CINEMATIC)]
    shop.ad("loser", spend=200, value=100, dna={"hook_type": "UGC testimonial"})
    queue = f"winners-{uuid.uuid4().hex[:8]}"
    dep.track(netns.start_worker_in(hosts[0], "ml", queues=[queue], env=env_for(0), log_dir=dep.log_dir,
                                    name="host-a-ml"))
    rebuilt = dep.send("ml", "auto_index_winners", queue=queue).get(timeout=300)
    assert rebuilt["total"] >= 3, rebuilt  # every tenant's winners with DNA in the database
    assert s3.get_object(Bucket=bucket, Key="index/winners.pointer.json")["ContentLength"] > 0
    answers = []
    for i in (1, 0):  # B first: it never saw the index being written
        proc, base = _api_in(hosts[i], {**env_for(i), "API_AUTH": "on", "API_KEYS": f"two-hosts={API_SECRET}"},
                             dep.log_dir, f"api-host-{'ab'[i]}")
        dep.track(proc)
        answers.append(_search(base, shop.tenant_id))
    on_b, on_a = answers
    assert [hit["ad_id"] for hit in on_b["results"]] == winners, on_b
    assert on_b == on_a


@pytest.mark.timeout(600)
def test_split_transcode_with_parts_on_both_hosts_goes_through_the_store(fleet: Fleet, tmp_path: Path) -> None:
    dep, hosts, roots, bucket = fleet.dep, fleet.hosts, fleet.roots, fleet.bucket
    s3 = fleet.store.client()
    job_queue = f"split-job-{uuid.uuid4().hex[:6]}"  # only host A splits; both hosts encode parts
    for i, host in enumerate(hosts):
        queues = [job_queue, "transcode_queue"] if i == 0 else ["transcode_queue"]
        dep.track(netns.start_worker_in(host, "video", queues=queues, log_dir=dep.log_dir, name=f"split-{'ab'[i]}",
                                        env=fleet.env_for(i, SPLIT_MIN_S="3", SPLIT_SEGMENT_S="2")))
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
