"""``geminivideo demo --storage s3://bucket/prefix/``: the demo's steps through the real Swift store.

Given the store and a fresh bucket, when the demo runs with ``--storage``, then every step succeeds, the
inputs, outputs (render, previews with sprite, both transcodes, captions) and the winner index are objects
under the prefix, the hosts' render and preview folders keep no output, and every printed download link
is a presigned URL that downloads its object whole. A ``--storage`` that is not an s3:// URI stops the
demo before anything starts, naming the option.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import psutil
import pytest
from botocore.client import BaseClient

from tests.support.demo import demo_env, demo_processes, run_demo
from tests.support.env import TestEnv as HarnessEnv

LINK = re.compile(r"^  (s3://\S+)\n    (https?://\S+)$", re.MULTILINE)


def _left_running(database_url: str) -> list[psutil.Process]:
    """This run's demo processes still alive (other demos on the machine use other databases)."""
    found = []
    for proc in demo_processes():
        try:
            if proc.environ().get("DATABASE_URL") == database_url:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_demo_through_the_store_stores_every_output_and_prints_links_that_download(
    test_env: HarnessEnv, bucket: str, s3: BaseClient, store_env: dict[str, str], tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    env = demo_env(test_env, root, **store_env)
    assert not _left_running(env["DATABASE_URL"]), "a previous demo run left processes behind"

    done = run_demo(env, root, "--storage", f"s3://{bucket}/demo/")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "12/12 steps succeeded" in output
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="demo/")
            for o in page.get("Contents", [])]
    names = {key.rsplit("/", 1)[-1] for key in keys if key.startswith("demo/outputs/")}
    assert {"transcode-h265.mp4", "transcode-vp9.webm", "captions.srt", "captions.vtt"} <= names, names
    assert any(re.fullmatch(r"demo-[0-9a-f]{8}\.mp4", n) for n in names), names
    assert any(n.startswith("sprite.") for n in names) and any(n.startswith("frame_") for n in names), names
    assert sum(key.startswith("demo/inputs/") for key in keys) == 3
    assert any(key.startswith("demo/index/") for key in keys), "the winner index went to INDEX_URL"
    assert not [p for d in (root / "renders", root / "previews") if d.exists() for p in d.rglob("*") if p.is_file()]

    links = dict(LINK.findall(output))
    stored = {f"s3://{bucket}/{key}" for key in keys if key.startswith("demo/outputs/")}
    assert set(links) == stored, (sorted(links), sorted(stored))
    render_uri = next(uri for uri in links if re.search(r"/demo-[0-9a-f]{8}\.mp4$", uri))
    assert "X-Amz-Signature=" in links[render_uri]
    body = httpx.get(links[render_uri], timeout=60).content
    head = s3.head_object(Bucket=bucket, Key=render_uri.split("/", 3)[3])
    assert len(body) == head["ContentLength"] and hashlib.sha256(body).hexdigest() == head["Metadata"]["sha256"]
    assert store_env["AWS_SECRET_ACCESS_KEY"] not in output
    assert _left_running(env["DATABASE_URL"]) == []


def test_demo_refuses_a_storage_option_that_is_not_an_s3_uri(
    test_env: HarnessEnv, store_env: dict[str, str], tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    done = run_demo(demo_env(test_env, root, **store_env), root, "--storage", "https://bucket/demo/", timeout_s=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--storage: 'https://bucket/demo/' is not an s3://bucket/key URI" in done.stderr
    assert "stopping the workers" not in done.stdout  # nothing was started
