"""The progress protocol of DESIGN.md §4 on a real Redis: keys, TTL, pub/sub, monotonic, rate-limited."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import redis

from geminivideo.contracts import ProgressEvent, TaskStatus
from geminivideo.progress import STATUS_TTL_S, ProgressPublisher, follow, progress_channel, read_status, status_key


class FakeClock:
    """Deterministic time for the rate limiter (the thing under test is the limiter, not the clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def task_id() -> str:
    return f"test-{uuid.uuid4()}"


def test_record_and_message_have_the_design_fields(redis_client: redis.Redis, task_id: str) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(progress_channel(task_id))
    ProgressPublisher(redis_client, task_id).publish(TaskStatus.STARTED, 0, "go")
    message = None
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            break
    pubsub.close()
    assert message is not None
    body = json.loads(message["data"])
    assert set(body) == {"task_id", "progress", "status", "message", "timestamp"}
    assert body["status"] == "started" and body["task_id"] == task_id
    assert body["timestamp"].endswith(("Z", "+00:00"))
    raw = redis_client.get(status_key(task_id))
    assert isinstance(raw, str), raw
    stored = json.loads(raw)
    assert stored == body
    assert STATUS_TTL_S - 5 < redis_client.ttl(status_key(task_id)) <= STATUS_TTL_S


def test_progress_is_monotonic_and_rate_limited(redis_client: redis.Redis, task_id: str) -> None:
    clock = FakeClock()
    publisher = ProgressPublisher(redis_client, task_id, min_interval_s=0.5, clock=clock)
    publisher.publish(TaskStatus.STARTED, 0)
    sent = []
    for step, value in enumerate([10, 20, 15, 30, 25, 60]):
        clock.now += 0.2 if step % 2 else 0.6
        event = publisher.processing(value)
        if event is not None:
            sent.append(event.progress)
    assert sent == sorted(sent), "published progress went backwards"
    assert len(sent) < 6, "every update went out: no rate limit"
    final = publisher.publish(TaskStatus.COMPLETED)
    assert final is not None and final.progress == 100
    stored = read_status(redis_client, task_id)
    assert stored is not None and stored.status is TaskStatus.COMPLETED and stored.progress == 100


def test_status_changes_are_never_dropped_by_the_rate_limit(redis_client: redis.Redis, task_id: str) -> None:
    clock = FakeClock()
    publisher = ProgressPublisher(redis_client, task_id, min_interval_s=10, clock=clock)
    assert publisher.publish(TaskStatus.STARTED, 0) is not None
    assert publisher.processing(5) is not None  # status changed
    assert publisher.processing(6) is None  # same status within the interval
    assert publisher.publish(TaskStatus.FAILED, None, "boom") is not None


def test_a_retry_never_moves_published_progress_backwards(redis_client: redis.Redis, task_id: str) -> None:
    first = ProgressPublisher(redis_client, task_id)
    first.publish(TaskStatus.PROCESSING, 40)
    second_attempt = ProgressPublisher(redis_client, task_id)
    event = second_attempt.publish(TaskStatus.STARTED, 0)
    assert event is not None and event.progress == 40


def test_follow_sees_every_update_until_the_final_one(redis_client: redis.Redis, task_id: str) -> None:
    publisher = ProgressPublisher(redis_client, task_id, min_interval_s=0)
    publisher.publish(TaskStatus.QUEUED, 0)
    seen: list[ProgressEvent] = []
    ready = threading.Event()

    def consume() -> None:
        stream = follow(redis_client, task_id, timeout_s=20)
        seen.append(next(stream))
        ready.set()
        seen.extend(stream)

    thread = threading.Thread(target=consume)
    thread.start()
    assert ready.wait(10)
    for value in (10, 50, 90):
        publisher.processing(value)
    publisher.publish(TaskStatus.COMPLETED)
    thread.join(20)
    assert [e.status for e in seen] == ["queued", "processing", "processing", "processing", "completed"]
    assert [e.progress for e in seen] == [0, 10, 50, 90, 100]


def test_a_late_attempt_never_reopens_a_finished_task(redis_client: redis.Redis, task_id: str) -> None:
    """Given a task completed by a second delivery, a cut-off first attempt's updates are dropped."""
    late = ProgressPublisher(redis_client, task_id, min_interval_s=0)
    late.publish(TaskStatus.PROCESSING, 30)
    ProgressPublisher(redis_client, task_id).publish(TaskStatus.COMPLETED)
    assert late.processing(60) is None
    assert late.processing(70) is None
    stored = read_status(redis_client, task_id)
    assert stored is not None and stored.status is TaskStatus.COMPLETED and stored.progress == 100
    # A final status may still replace a final one (a redelivered task that ends differently).
    assert late.publish(TaskStatus.COMPLETED) is not None
