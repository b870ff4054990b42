"""Given two real ``celery beat`` processes of one app on one Redis, when they run side by side, then the
RedBeat lock lets only one send, so every schedule entry fires once per period; when the sender stops, the
other takes over without a burst or a duplicate.

Each test runs its own redis-server, so the messages the beats send stay in the broker where they are
counted (no worker consumes them) and no session worker runs a cleanup on shared folders.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from geminivideo import procs
from tests.support import env as support_env

LOCK_ACQUIRED = "beat: Acquired lock"


@dataclass
class FireLog:
    """When each task message first appeared in the broker, per task name (polled from every queue list)."""

    client: redis.Redis
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    def poll(self) -> int:
        """Record the messages that appeared since the last poll; return how many fires were seen so far."""
        now = time.monotonic()
        for key in self.client.scan_iter(count=1000):
            if self.client.type(key) != "list":
                continue
            for raw in self.client.lrange(key, 0, -1):
                headers = json.loads(raw)["headers"]
                self.seen.setdefault(headers["id"], (headers["task"], now))
        return len(self.seen)

    def watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.2)

    def times(self, task: str, since: float = 0.0) -> list[float]:
        return sorted(t for name, t in self.seen.values() if name == task and t >= since)


def start_beat(app: str, env: dict[str, str], workdir: Path, name: str) -> procs.ManagedProcess:
    argv = [sys.executable, "-m", "celery", "-A", procs.WORKER_APPS[app], "beat", "-l", "INFO",
            "-s", str(workdir / f"{name}-schedule")]
    return procs.spawn(f"beat:{name}", argv, env=env, log_path=workdir / f"{name}.log", cwd=workdir)


@pytest.fixture
def beat_env(test_env: support_env.TestEnv, tmp_path: Path) -> Iterator[tuple[dict[str, str], redis.Redis]]:
    server, url = procs.start_redis(data_dir=tmp_path / "beat-redis")
    client = redis.Redis.from_url(url, decode_responses=True)
    env = test_env.process_env(REDIS_URL=url, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)
    try:
        yield env, client
    finally:
        client.close()
        server.stop()


@pytest.fixture
def beats(tmp_path: Path) -> Iterator[list[procs.ManagedProcess]]:
    started: list[procs.ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop(timeout_s=10)


def holder_of(pair: list[procs.ManagedProcess]) -> tuple[procs.ManagedProcess, procs.ManagedProcess]:
    holders = [p for p in pair if LOCK_ACQUIRED in p.log_tail(500)]
    assert len(holders) == 1, [p.log_tail(20) for p in pair]
    return holders[0], next(p for p in pair if p is not holders[0])


def assert_no_double_fire(times: list[float], period_s: float, window_s: float) -> None:
    """No two fires within one period (a double-fire is ~0 s apart) and no more fires than periods."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps, "fewer than two fires"
    assert min(gaps) >= 0.6 * period_s, f"two fires within one period: gaps {gaps}"
    assert len(times) <= window_s / period_s + 1.5, f"{len(times)} fires in {window_s:.0f} s at one per {period_s} s"


def assert_once_per_period(times: list[float], period_s: float, window_s: float) -> None:
    assert_no_double_fire(times, period_s, window_s)
    assert len(times) >= window_s / period_s - 2.5, f"only {len(times)} fires in {window_s:.0f} s"


def test_two_video_beats_fire_each_entry_once_per_period_and_fail_over(beat_env: tuple[dict[str, str], redis.Redis],
                                                                       beats: list[procs.ManagedProcess],
                                                                       tmp_path: Path) -> None:
    env, client = beat_env
    env = {**env, "MONITOR_INTERVAL_S": "2", "CLEANUP_INTERVAL_S": "3", "BEAT_PROBE_INTERVAL_S": "2"}
    periods = {"monitor_resources_task": 2.0, "cleanup_task": 3.0, "video_ping": 2.0}
    beats += [start_beat("video", env, tmp_path, "beat-a"), start_beat("video", env, tmp_path, "beat-b")]
    fires = FireLog(client)
    procs.wait_until(lambda: fires.poll() >= 3, 60, what="first fires of the video beat")
    start = time.monotonic()
    fires.watch(12)
    window = time.monotonic() - start

    holder, standby = holder_of(beats)
    assert all(p.alive() for p in beats)  # the standby is running, waiting on the lock, not crashed
    assert "Sending due task" not in standby.log_tail(500)
    assert client.ttl("redbeat:video::lock") > 0
    for task, period in periods.items():
        assert_once_per_period(fires.times(task, since=start - period), period, window + period)

    holder.popen.terminate()  # SIGTERM: a warm stop releases the lock at once; keep polling meanwhile
    procs.wait_until(lambda: fires.poll() >= 0 and not holder.alive(), 15, what="the holder's exit")
    assert holder.popen.returncode == 0, holder.log_tail(20)
    procs.wait_until(lambda: fires.poll() >= 0 and LOCK_ACQUIRED in standby.log_tail(500), 20,
                     what="takeover by the standby beat")
    took_over_at = time.monotonic()
    # Every entry fires again under the new holder: wait for each one's first fire after the takeover (a loaded
    # CI machine can stretch the first tick), then watch two more periods for duplicates.
    procs.wait_until(lambda: fires.poll() >= 0 and all(fires.times(task, since=took_over_at) for task in periods),
                     20, what="every entry firing under the standby beat")
    fires.watch(2 * max(periods.values()))
    assert "Sending due task" in standby.log_tail(500)
    for task, period in periods.items():
        # Across the hand-over too: no fire repeated, no burst of missed ones.
        assert_no_double_fire(fires.times(task), period, time.monotonic() - start + 2 * period)
        assert len(fires.times(task, since=took_over_at)) >= 2, f"{task} fired once after the takeover, then stopped"


def test_two_ml_beats_share_one_schedule_and_send_once_per_period(beat_env: tuple[dict[str, str], redis.Redis],
                                                                  beats: list[procs.ManagedProcess],
                                                                  tmp_path: Path) -> None:
    env, client = beat_env
    env = {**env, "BEAT_PROBE_INTERVAL_S": "2"}
    beats += [start_beat("ml", env, tmp_path, "ml-a"), start_beat("ml", env, tmp_path, "ml-b")]
    fires = FireLog(client)
    procs.wait_until(lambda: fires.poll() >= 1, 60, what="first fire of the ML beat")
    start = time.monotonic()
    fires.watch(10)

    holder_of(beats)
    assert all(p.alive() for p in beats)
    assert_once_per_period(fires.times("ml_ping", since=start - 2), 2.0, time.monotonic() - start + 2)
    # The ML app's own entries are stored once in RedBeat, due at their next period (a new entry waits one
    # period), so none was sent during the test, by either beat.
    for entry, task in (("monitor-fatigue-6h", "monitor_all_ads_fatigue"), ("sweep-webhook-events",
                                                                            "sweep_webhook_events")):
        assert client.zscore("redbeat:ml::schedule", f"redbeat:ml:{entry}") is not None
        assert fires.times(task) == []
