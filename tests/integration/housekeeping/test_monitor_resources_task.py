"""Given a real video worker, when monitor_resources_task runs, then one snapshot is stored under both keys
for 300 s and published on resource_monitor, with this host's figures and its warnings."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from geminivideo.video.tasks import monitor_resources_task
from tests.integration.housekeeping.conftest import HousekeepingWorker

TOP_LEVEL = {"hostname", "timestamp", "cpu", "memory", "disks", "gpus", "gpu_status", "errors", "thresholds",
             "warnings"}


def next_message(pubsub: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return json.loads(message["data"])
    raise AssertionError(f"nothing published on resource_monitor within {timeout_s} s")


def test_snapshot_is_stored_under_both_keys_and_published(hk: HousekeepingWorker, redis_client: redis.Redis) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("resource_monitor")
    try:
        result = monitor_resources_task.apply_async(queue=hk.queue).get(timeout=60)
        published = next_message(pubsub, 10)
    finally:
        pubsub.close()

    host_key = f"system_resources:{hk.resource_hostname}"
    for key in (host_key, "system_resources"):
        raw = redis_client.get(key)
        assert isinstance(raw, str), f"{key}: {raw!r}"
        assert json.loads(raw) == published
    assert 290 <= redis_client.ttl(host_key) <= 300 and 290 <= redis_client.ttl("system_resources") <= 300
    assert result["published"] is True
    assert {k: v for k, v in result.items() if k != "published"} == published

    assert set(published) == TOP_LEVEL
    assert published["hostname"] == hk.resource_hostname
    assert 0 <= published["cpu"]["percent"] <= 100 and published["cpu"]["count"] >= 1
    assert len(published["cpu"]["load_average"]) == 3
    assert published["memory"]["total_bytes"] > 0 and 0 < published["memory"]["percent"] <= 100
    [disk] = published["disks"]  # the worker's three dirs share one filesystem
    assert sorted(disk["paths"]) == sorted(str(p) for p in hk.roots.values())
    assert disk["total_bytes"] >= disk["used_bytes"] > 0
    assert published["errors"] == {}
    if published["gpu_status"].startswith("absent"):  # no NVIDIA driver on this host: a normal state
        assert published["gpus"] == []
    else:
        assert published["gpus"] and "memory_total_bytes" in published["gpus"][0]


def test_figures_above_their_threshold_are_warned_about(hk: HousekeepingWorker) -> None:
    result = monitor_resources_task.apply_async(queue=hk.queue).get(timeout=60)
    # The worker runs with memory and disk thresholds of 0.01 %, CPU and GPU at the 90 % default.
    assert result["thresholds"] == {"cpu": 90.0, "memory": 0.01, "disk": 0.01, "gpu_memory": 90.0}
    kinds = {w["resource"] for w in result["warnings"]}
    assert {"memory", "disk"} <= kinds
    memory = next(w for w in result["warnings"] if w["resource"] == "memory")
    assert f"on {hk.resource_hostname} (threshold 0.01 %)" in memory["message"]
    deadline = time.monotonic() + 5
    while "resource warning: memory at" not in hk.proc.log_tail(200) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "resource warning: memory at" in hk.proc.log_tail(200)
