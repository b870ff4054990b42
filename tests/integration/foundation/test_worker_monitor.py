"""Every video worker publishes its own host's resource snapshot, with no beat and no maintenance queue."""

from __future__ import annotations

import json
import time

import redis

from tests.conftest import StartWorker


def test_each_worker_keeps_its_host_snapshot_fresh(start_worker: StartWorker, redis_client: redis.Redis) -> None:
    redis_client.delete("system_resources:host-a", "system_resources:host-b")
    start_worker("video", queues=["caption_queue"], name="mon-a", RESOURCE_HOSTNAME="host-a", MONITOR_INTERVAL_S="1")
    start_worker("video", queues=["caption_queue"], name="mon-b", RESOURCE_HOSTNAME="host-b", MONITOR_INTERVAL_S="1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        redis_client.exists("system_resources:host-a") and redis_client.exists("system_resources:host-b")
    ):
        time.sleep(0.5)
    first = json.loads(redis_client.get("system_resources:host-a") or "{}")
    assert first.get("hostname") == "host-a"
    assert json.loads(redis_client.get("system_resources:host-b") or "{}").get("hostname") == "host-b"
    assert 0 < redis_client.ttl("system_resources:host-a") <= 300
    time.sleep(3)
    later = json.loads(redis_client.get("system_resources:host-a") or "{}")
    assert later["timestamp"] > first["timestamp"], "the snapshot was not refreshed"


def test_the_monitor_can_be_switched_off(start_worker: StartWorker, redis_client: redis.Redis) -> None:
    redis_client.delete("system_resources:host-off")
    start_worker("video", queues=["caption_queue"], name="mon-off", RESOURCE_HOSTNAME="host-off",
                 MONITOR_INTERVAL_S="1", RESOURCE_MONITOR_ON_WORKERS="false")
    time.sleep(4)
    assert not redis_client.exists("system_resources:host-off")
