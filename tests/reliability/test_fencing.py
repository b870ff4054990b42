"""Fencing tokens against the session's real Redis: a superseded attempt cannot publish, store or commit.

- Given attempt 1 of a task and then attempt 2 (a redelivery elsewhere), attempt 1's progress update is
  refused atomically and marks it lost; its next progress step raises LeaseLost; its output rename and its
  result store are refused; attempt 2's records go through.
- A record carrying a higher token is never overwritten by a lower one, even without a newer counter.
- An attempt that cannot reach Redis for LEASE_TIMEOUT_S loses its lease by itself and kills the process
  group it guards (a real child process standing in for FFmpeg).
"""

from __future__ import annotations

import contextvars
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from geminivideo.contracts import ProgressEvent, TaskStatus, utcnow
from geminivideo.errors import LeaseLost
from geminivideo.leases import fencing
from geminivideo.leases.backend import FencedRedisBackend, fenced_url
from geminivideo.progress import ProgressPublisher, read_status, status_key
from geminivideo.video.ffmpeg import atomic_output
from tests.support import env as support_env

pytestmark = [pytest.mark.reliability]


def _in_own_context(task_id: str) -> tuple[contextvars.Context, fencing.Attempt]:
    """Begin an attempt in a context of its own (as each pool process runs its own)."""
    context = contextvars.copy_context()
    attempt = context.run(fencing.begin, task_id)
    return context, attempt


def _write(output: Path, data: bytes) -> None:
    with atomic_output(output) as temp:
        temp.write_bytes(data)


@pytest.fixture
def task_id() -> Iterator[str]:
    yield f"fence-{uuid.uuid4().hex[:8]}"


def test_a_superseded_attempt_publishes_stores_and_commits_nothing(redis_client: redis.Redis, task_id: str,
                                                                   tmp_path: Path) -> None:
    old_ctx, old = _in_own_context(task_id)
    old_progress = ProgressPublisher(redis_client, task_id, attempt=old, min_interval_s=0)
    assert old_progress.processing(10, "old at work") is not None
    new_ctx, new = _in_own_context(task_id)
    assert (old.token, new.token) == (new.token - 1, int(cast(str, redis_client.get(fencing.token_key(task_id)))))
    try:
        assert old_progress.publish(TaskStatus.PROCESSING, 20, "old, late") is None
        assert old.lost is not None, "a refused fenced publish must mark the attempt lost"
        with pytest.raises(LeaseLost):
            old_progress.processing(30, "next step")
        output = tmp_path / "out.bin"
        with pytest.raises(LeaseLost):
            old_ctx.run(_write, output, b"old attempt's bytes")
        assert not output.exists() and list(tmp_path.iterdir()) == []

        new_progress = ProgressPublisher(redis_client, task_id, attempt=new, min_interval_s=0)
        assert new_progress.processing(5, "new at work") is not None
        record = read_status(redis_client, task_id)
        assert record is not None and record.lease_token == new.token and record.message == "new at work"
        new_ctx.run(_write, output, b"new attempt's bytes")
        assert output.read_bytes() == b"new attempt's bytes"
    finally:
        old.stop()
        new.stop()


def test_the_result_backend_stores_only_the_current_attempts_result(
    test_env: support_env.TestEnv, task_id: str
) -> None:
    app = Celery("fence-test", set_as_current=False)
    app.conf.result_backend = fenced_url(test_env.redis_url)
    backend = app.backend
    assert isinstance(backend, FencedRedisBackend)
    old_ctx, old = _in_own_context(task_id)
    new_ctx, new = _in_own_context(task_id)
    try:
        old_ctx.run(backend.store_result, task_id, {"by": "old"}, "SUCCESS")
        assert backend.get_task_meta(task_id)["status"] == "PENDING"
        assert old.lost is not None
        new_ctx.run(backend.store_result, task_id, {"by": "new"}, "SUCCESS")
        assert backend.get_task_meta(task_id)["result"] == {"by": "new"}
    finally:
        old.stop()
        new.stop()
        app.close()


def test_a_lower_token_never_overwrites_a_higher_one(redis_client: redis.Redis, task_id: str) -> None:
    # A record written by attempt 5 (e.g. restored from another Redis) while the counter says 3.
    redis_client.set(fencing.token_key(task_id), 3)
    higher = ProgressEvent(task_id=task_id, progress=40, status=TaskStatus.PROCESSING, message="attempt 5",
                           timestamp=utcnow(), lease_token=5)
    redis_client.set(status_key(task_id), higher.model_dump_json())
    _ctx, attempt = _in_own_context(task_id)  # token 4
    try:
        assert attempt.token == 4
        publisher = ProgressPublisher(redis_client, task_id, attempt=attempt, min_interval_s=0)
        assert publisher.publish(TaskStatus.PROCESSING, 50, "attempt 4") is None
        record = read_status(redis_client, task_id)
        assert record is not None and record.lease_token == 5 and record.message == "attempt 5"
    finally:
        attempt.stop()


def test_an_attempt_cut_off_from_redis_loses_its_lease_and_kills_its_process_group(
        monkeypatch: pytest.MonkeyPatch, task_id: str) -> None:
    started = time.monotonic()  # an attempt's lease clock starts when it is made (its token was just granted)
    attempt = fencing.Attempt(task_id, 1, timeout_s=2.0, renew_s=0.5)
    # Redis unreachable: a port nothing listens on (the probe client is per process; use a private one).
    dead = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(fencing, "_probe_client", lambda timeout_s: dead)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with attempt.guarding(child.pid):
            attempt.start()
            child.wait(timeout=10)
        took = time.monotonic() - started
        assert attempt.lost is not None and "Redis" in attempt.lost
        assert child.returncode == -9 and 2.0 <= took <= 2.0 + 0.5 + 1.0, took
    finally:
        attempt.stop()
        if child.poll() is None:
            child.kill()
