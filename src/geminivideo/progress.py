"""The task progress protocol of DESIGN.md §4.

Every update is one JSON object ``{task_id, progress, status, message, timestamp}`` written with
``SETEX task_status:<id>`` (24 h) and sent with ``PUBLISH task_progress:<id>``. A publisher keeps
progress monotonic and rate-limits ``processing`` updates; status changes and final states always go out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from geminivideo.contracts import FINAL_STATUSES, ProgressEvent, TaskStatus, utcnow
from geminivideo.leases.fencing import Attempt, token_key

log = logging.getLogger(__name__)

STATUS_TTL_S = 24 * 3600
DEFAULT_MIN_INTERVAL_S = 0.5  # at most ~2 processing messages per second


# SETEX + PUBLISH, unless the update is not final and the stored record already is, or (fenced updates) a newer
# attempt holds the task: its token counter is past ours, or the stored record carries a higher token. Atomic in
# Redis. Returns 1 sent, 0 refused (task over), -1 refused (superseded).
_PUBLISH_LUA = """
local record = nil
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' then record = decoded end
end
local token = tonumber(ARGV[4])
if token then
  if tonumber(redis.call('GET', KEYS[3]) or '0') > token then return -1 end
  if record and (tonumber(record['lease_token']) or 0) > token then return -1 end
end
if ARGV[3] == '0' and record then
  local status = record['status']
  if status == 'completed' or status == 'failed' or status == 'cancelled' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
"""

def status_key(task_id: str) -> str:
    return f"task_status:{task_id}"


def progress_channel(task_id: str) -> str:
    return f"task_progress:{task_id}"


def read_status(client: redis.Redis, task_id: str) -> ProgressEvent | None:
    raw = client.get(status_key(task_id))
    return ProgressEvent.model_validate_json(raw) if raw else None


class ProgressPublisher:
    """Publishes one task's progress; safe to call often, it drops what the rate limit forbids."""

    def __init__(
        self,
        client: redis.Redis,
        task_id: str,
        *,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        attempt: Attempt | None = None,
    ) -> None:
        self._client = client
        self.task_id = task_id
        self.attempt = attempt  # when set, every update is fenced by its token
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last_sent_at: float | None = None
        self._last_status: TaskStatus | None = None
        self._progress = self._stored_progress()
        self._superseded = False
        # redis-py sends the script by SHA and loads it once per server; registering is local and cheap.
        self._publish_script = client.register_script(_PUBLISH_LUA)

    def _stored_progress(self) -> float:
        # A retried task starts over; the published figure holds until the new attempt passes it.
        try:
            current = read_status(self._client, self.task_id)
        except (redis.RedisError, ValueError):
            return 0.0
        if current is None or current.status in FINAL_STATUSES:
            return 0.0
        return current.progress

    @property
    def progress(self) -> float:
        return self._progress

    def publish(
        self, status: TaskStatus, progress: float | None = None, message: str = "", *, force: bool = False
    ) -> ProgressEvent | None:
        """Send an update; return it, or None when rate-limited or the task already ended. Never raises on
        Redis trouble. An attempt that lost its lease publishes nothing."""
        if self.attempt is not None and self.attempt.lost is not None:
            return None
        if self._superseded and status not in FINAL_STATUSES:
            return None
        if status is TaskStatus.COMPLETED:
            progress = 100.0
        if progress is not None:
            self._progress = max(self._progress, min(100.0, max(0.0, float(progress))))
        now = self._clock()
        changed = status is not self._last_status
        routine = not (force or changed or status in FINAL_STATUSES)
        if routine and self._last_sent_at is not None and now - self._last_sent_at < self._min_interval_s:
            return None
        event = ProgressEvent(
            task_id=self.task_id, progress=round(self._progress, 2), status=status, message=message, timestamp=utcnow(),
            lease_token=self.attempt.token if self.attempt is not None else None,
        )
        if self._send(event):
            self._last_sent_at, self._last_status = now, status
        elif self._superseded or (self.attempt is not None and self.attempt.lost is not None):
            return None
        return event

    def _send(self, event: ProgressEvent) -> bool:
        # Records written outside an attempt (the sender's "queued", a revoke) keep DESIGN §4's five fields.
        body = event.model_dump_json(exclude={"lease_token"} if event.lease_token is None else None)
        try:
            if event.status is TaskStatus.QUEUED:
                # The sender writes "queued" after the message has left: a fast worker may have published
                # "started", or even "failed", already. Only a task with no record yet is marked queued.
                if not self._client.set(status_key(self.task_id), body, ex=STATUS_TTL_S, nx=True):
                    return False
                self._client.publish(progress_channel(self.task_id), body)
                return True
            final = "1" if event.status in FINAL_STATUSES else "0"
            keys = [status_key(self.task_id), progress_channel(self.task_id), token_key(self.task_id)]
            token = str(self.attempt.token) if self.attempt is not None else ""
            sent = int(self._publish_script(keys=keys, args=[body, STATUS_TTL_S, final, token]))
            if sent == -1 and self.attempt is not None:
                self.attempt.superseded()  # a newer attempt runs the task: this one stops
                return False
            if sent != 1:
                # The task already ended (e.g. a second delivery finished first while this one was cut off):
                # a late attempt must not turn "completed" back into "processing".
                self._superseded = True
                return False
            if self.attempt is not None:
                self.attempt.confirmed()
        except redis.RedisError as exc:
            # Progress is advisory: a Redis hiccup must not fail a one-hour render.
            log.warning("progress for %s not published: %s", self.task_id, exc)
            return False
        return True

    def processing(self, progress: float, message: str = "") -> ProgressEvent | None:
        """A ``processing`` update (the ProgressCallback of domain code). Raises LeaseLost once the attempt has
        lost its lease, so the work stops at its next step (FFmpeg's group is killed as it unwinds)."""
        if self.attempt is not None:
            self.attempt.ensure()
        return self.publish(TaskStatus.PROCESSING, progress, message)


class FollowSteps:
    """The decisions of following a task, without I/O, shared by the blocking ``follow`` below and the asyncio
    ``client.follow_async``: parse the stored record, then each message, and stop at a final status or the
    deadline. The caller subscribes before reading the stored record, so no update between the two is missed.
    """

    POLL_S = 1.0  # longest single wait, so the deadline is honoured even when nothing is published

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self.finished = False

    def stored(self, raw: str | bytes | None) -> ProgressEvent | None:
        """The ``task_status`` record read after subscribing, if there is one."""
        event = ProgressEvent.model_validate_json(raw) if raw else None
        self.finished = event is not None and event.is_final
        return event

    def next_wait_s(self) -> float | None:
        """How long to wait for the next message; None once a final status arrived or the deadline passed."""
        remaining = self._deadline - time.monotonic()
        return None if self.finished or remaining <= 0 else min(self.POLL_S, remaining)

    def received(self, message: dict[str, Any] | None) -> ProgressEvent | None:
        """The event in a pub/sub message (None when the wait ended without one)."""
        if message is None:
            return None
        event = ProgressEvent.model_validate(json.loads(message["data"]))
        self.finished = event.is_final
        return event


def follow(client: redis.Redis, task_id: str, *, timeout_s: float = 3600.0) -> Iterator[ProgressEvent]:
    """Yield a task's progress events until a final status or ``timeout_s``."""
    steps = FollowSteps(timeout_s)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(progress_channel(task_id))
    try:
        if (event := steps.stored(client.get(status_key(task_id)))) is not None:
            yield event
        while (wait_s := steps.next_wait_s()) is not None:
            if (event := steps.received(pubsub.get_message(timeout=wait_s))) is not None:
                yield event
    finally:
        pubsub.close()


ProgressCallback = Callable[[float, str], object]
"""What domain code calls with (percent, message); tasks pass ``ProgressPublisher.processing``."""


def no_progress(_percent: float, _message: str) -> None:
    """A ProgressCallback that drops updates (domain code called outside a task)."""
