"""Every video worker publishes its own host's resource snapshot, with no beat and no maintenance queue."""

from __future__ import annotations

import json
from typing import Any

import redis

from geminivideo import procs
from tests.conftest import StartWorker


def _snapshot(client: redis.Redis, host: str) -> dict[str, Any]:
    raw = client.get(f"system_resources:{host}")
    return json.loads(raw) if isinstance(raw, str) else {}


def test_each_worker_keeps_its_host_snapshot_fresh(start_worker: StartWorker, redis_client: redis.Redis) -> None:
    redis_client.delete("system_resources:host-a", "system_resources:host-b")
    start_worker("video", queues=["caption_queue"], name="mon-a", RESOURCE_HOSTNAME="host-a", MONITOR_INTERVAL_S="1")
    start_worker("video", queues=["caption_queue"], name="mon-b", RESOURCE_HOSTNAME="host-b", MONITOR_INTERVAL_S="1")
    procs.wait_until(lambda: bool(_snapshot(redis_client, "host-a") and _snapshot(redis_client, "host-b")), 20,
                     interval_s=0.2, what="a snapshot from each worker")
    first = _snapshot(redis_client, "host-a")
    assert first.get("hostname") == "host-a"
    assert _snapshot(redis_client, "host-b").get("hostname") == "host-b"
    assert 0 < redis_client.ttl("system_resources:host-a") <= 300
    procs.wait_until(lambda: _snapshot(redis_client, "host-a")["timestamp"] > first["timestamp"], 15,
                     interval_s=0.2, what="the snapshot of host-a refreshed (interval 1 s)")


def test_the_monitor_can_be_switched_off(start_worker: StartWorker, redis_client: redis.Redis) -> None:
    redis_client.delete("system_resources:host-off", "system_resources:host-on")
    start_worker("video", queues=["caption_queue"], name="mon-off", RESOURCE_HOSTNAME="host-off",
                 MONITOR_INTERVAL_S="1", RESOURCE_MONITOR_ON_WORKERS="false")
    # A control worker started after it, with the monitor on: once its snapshot has been refreshed, the first
    # worker has been up for at least two of its intervals too, and would have published by then.
    start_worker("video", queues=["caption_queue"], name="mon-on", RESOURCE_HOSTNAME="host-on",
                 MONITOR_INTERVAL_S="1")
    procs.wait_until(lambda: bool(_snapshot(redis_client, "host-on")), 20, interval_s=0.2,
                     what="the control worker's first snapshot")
    first = _snapshot(redis_client, "host-on")
    procs.wait_until(lambda: _snapshot(redis_client, "host-on")["timestamp"] > first["timestamp"], 15,
                     interval_s=0.2, what="the control worker's second snapshot")
    assert not redis_client.exists("system_resources:host-off")
