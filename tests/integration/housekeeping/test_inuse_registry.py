"""The in-use registry on the real Redis: leases of several holders of one path, expiry of a dead holder."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from geminivideo.video.housekeeping.inuse import IN_USE_KEY, in_use, paths_in_use


def test_a_path_two_tasks_share_stays_held_until_both_release_it(tmp_path: Path) -> None:
    shared = tmp_path / "upload.mp4"
    shared.write_bytes(b"x")
    with in_use(shared):
        with in_use(shared):  # e.g. a preview and a transcode of the same upload
            assert shared.resolve() in paths_in_use()
        assert shared.resolve() in paths_in_use(), "the first holder's release dropped the other's lease"
    assert shared.resolve() not in paths_in_use()


def test_a_crashed_holders_lease_expires(tmp_path: Path, redis_client: redis.Redis) -> None:
    path = tmp_path / "orphan.mp4"
    with in_use(path, lease_s=60):  # no heartbeat renews it during the test
        held = [str(m) for m in redis_client.zrange(IN_USE_KEY, 0, -1) if str(path) in str(m)]
        assert held
        redis_client.zadd(IN_USE_KEY, dict.fromkeys(held, time.time() - 1))  # as if its heartbeat had stopped
        assert path.resolve() not in paths_in_use()
