"""``make_celery()``: the reliable defaults both worker apps share (DESIGN.md §3).

The configuration is computed lazily (``Celery.add_defaults`` with a callable), so importing an app
reads no environment and opens no connection; the first use of ``app.conf`` does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy.exc
from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import after_setup_logger, task_revoked, worker_process_init
from kombu import Queue

from geminivideo.config import Settings, get_settings
from geminivideo.contracts import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    QUEUE_PRIORITY,
    TASK_QUEUE,
    QueueName,
    TaskName,
    TaskStatus,
)
from geminivideo.errors import Cancelled, InvalidPayload, LeaseLost, TransientError
from geminivideo.leases import fencing
from geminivideo.leases.backend import fenced_url
from geminivideo.leases.consumer_timeout import consumer_arguments
from geminivideo.progress import ProgressPublisher
from geminivideo.redis_client import get_redis, reset_redis
from geminivideo.redis_transport import TRANSPORT_PATH as REDIS_TRANSPORT
from geminivideo.telemetry import celery_hooks

log = logging.getLogger(__name__)

RESULT_EXPIRES_S = 24 * 3600
REDIS_PRIORITY_STEPS = list(range(10))


def transport_priority(priority: int, *, broker_is_redis: bool) -> int:
    """Translate the seed's scale (0–10, higher = more urgent) to what the transport expects.

    On Redis, kombu sorts priority 0 first, so the scale is inverted onto its ten steps; AMQP queues
    declared with ``x-max-priority`` use the seed's direction as is.
    """
    clamped = max(0, min(MAX_PRIORITY, int(priority)))
    if broker_is_redis:
        return 9 - round(clamped * 9 / MAX_PRIORITY)
    return clamped


def task_priority(task_name: str, priority: int | None = None) -> int:
    """The transport priority of a message for ``task_name``: ``priority`` (seed scale) or its queue's.

    Used by ``GeminiTask.apply_async`` and by senders that only know the task's name (API, CLI, demo).
    """
    if priority is None:
        queue = TASK_QUEUE.get(TaskName(task_name)) if task_name in TaskName._value2member_map_ else None
        priority = QUEUE_PRIORITY.get(queue, DEFAULT_PRIORITY) if queue else DEFAULT_PRIORITY
    return transport_priority(priority, broker_is_redis=get_settings().broker_is_redis)


def announce_queued(task_id: str) -> None:
    """The first progress record of a task that publishes progress, written as its message is sent."""
    ProgressPublisher(get_redis(), task_id).publish(TaskStatus.QUEUED, 0, "waiting for a worker")


@dataclass(frozen=True)
class TimeLimit:
    soft_s: int
    hard_s: int


def grace_limit(soft_s: int) -> TimeLimit:
    """A hard limit a little above the soft one, so the task can kill FFmpeg and clean up first."""
    return TimeLimit(soft_s, soft_s + max(30, soft_s // 20))


@dataclass(frozen=True)
class AppSpec:
    """What differs between the ML and the video app."""

    name: str
    include: Sequence[str]
    queues: Sequence[QueueName]
    time_limits: Callable[[Settings], Mapping[TaskName, TimeLimit]]
    beat_schedule: Callable[[Settings], dict[str, dict[str, Any]]] = field(default=lambda s: {})


class GeminiTask(Task):
    """Base task: publishes progress from Celery's lifecycle hooks and retries only transient errors."""

    abstract = True
    autoretry_for = (TransientError, redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    # Full jitter draws each wait from [0, 2**n * 2 s] (cap 300 s): five tries could all come within ~10 s and
    # give up during a 30-second database restart. Ten span minutes (~9 min expected) before failing.
    max_retries = 10
    publishes_progress = True
    records_video_job = False  # video tasks keep their ``video_jobs`` row (API/CLI submissions) up to date
    # (args, kwargs) -> {"argsrepr", "kwargsrepr"}: what Flower and logs show instead of the payload itself.
    message_repr: Callable[[Any, Any], dict[str, str]] | None = None

    _publishers: dict[str, ProgressPublisher]

    def progress(self, task_id: str | None = None) -> ProgressPublisher:
        """The progress publisher of the current (or given) task id, one per id in this process."""
        task_id = task_id or self.request.id
        cache = self.__dict__.setdefault("_publishers", {})
        attempt = fencing.current(task_id)
        if task_id not in cache or cache[task_id].attempt is not attempt:
            cache.clear()  # one task runs at a time per pool process
            cache[task_id] = ProgressPublisher(get_redis(), task_id, attempt=attempt)
        return cache[task_id]

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None, **options: Any) -> Any:
        options["priority"] = task_priority(self.name, options.pop("priority", None))
        # Celery copies the *sender's* task limits into the message headers, and workers obey headers:
        # leave them out unless the caller asks, so the worker's own settings (RENDER_TIMEOUT, …) apply.
        options.setdefault("time_limit", None)
        options.setdefault("soft_time_limit", None)
        if self.message_repr is not None and "argsrepr" not in options:
            options.update(self.message_repr(args, kwargs))
        result = super().apply_async(args, kwargs, task_id=task_id, **options)
        if self.publishes_progress:
            announce_queued(result.id)
        return result

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        fencing.begin(task_id)  # this attempt's token: progress, result and outputs are fenced by it
        if self.publishes_progress:
            self.progress(task_id).publish(TaskStatus.STARTED, None, f"started on {self.request.hostname}")
        self._record(task_id, TaskStatus.STARTED)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body, then publish its final status *before* Celery stores the result.

        Celery's ``on_success``/``on_failure`` run after the result backend is written, so a client that
        sees the result and then reads ``task_status:<id>`` could still find ``processing``.
        """
        task_id = self.request.id
        if task_id is None:  # called directly as a function, not as a task
            return super().__call__(*args, **kwargs)
        attempt = fencing.current(task_id)
        try:
            self._check_arguments(args, kwargs)
            retval = super().__call__(*args, **kwargs)
            if attempt is not None:
                attempt.check()  # still the attempt that holds the task, just before its result goes out
        except (Retry, Ignore):
            raise  # Ignore: replaced by other tasks (a split transcode's chord), which report under this id
        except BaseException as exc:
            if attempt is not None and attempt.lost is not None:
                raise _hand_back(attempt) from exc
            self._finish(task_id, _final_status(exc), error=f"{type(exc).__name__}: {exc}")
            raise
        self._finish(task_id, TaskStatus.COMPLETED, result=retval if isinstance(retval, dict) else None)
        if attempt is not None and attempt.lost is not None:  # superseded while publishing "completed"
            raise _hand_back(attempt)
        return retval

    def _check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Refuse a message whose arguments do not fit the task's signature as an invalid payload, instead of
        letting Python's TypeError stand for it (which a bug inside the task raises too)."""
        signature = inspect.signature(self.run)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            expected = ", ".join(str(p.replace(annotation=p.empty)) for p in signature.parameters.values())
            raise InvalidPayload(f"{self.name}: {exc}; the task takes ({expected})") from None

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        fencing.end(task_id)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self._finish(task_id, TaskStatus.COMPLETED, result=retval if isinstance(retval, dict) else None)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if self.publishes_progress:
            self.progress(task_id).publish(TaskStatus.RETRYING, None, f"retrying after: {exc}")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Reached without __call__'s report when the failure came from outside the body (e.g. a time limit).
        self._finish(task_id, _final_status(exc), error=f"{type(exc).__name__}: {exc}")

    def _finish(self, task_id: str, status: TaskStatus, **outcome: Any) -> None:
        """Publish and record a final status once per task id in this process."""
        finished = self.__dict__.setdefault("_finished", set())
        if task_id in finished:
            return
        finished.clear()  # one task runs at a time per pool process
        finished.add(task_id)
        attempt = fencing.current(task_id)
        if attempt is not None and attempt.lost is not None:
            return  # a lost attempt publishes nothing, records nothing
        if self.publishes_progress:
            error = outcome.get("error")
            message = "done" if status is TaskStatus.COMPLETED else str(error)
            self.progress(task_id).publish(status, 100 if status is TaskStatus.COMPLETED else None, message)
        self._record(task_id, status, **outcome)

    def _record(self, task_id: str, status: TaskStatus, **outcome: Any) -> None:
        if self.records_video_job:
            from geminivideo.db.jobs import record_status  # the ML app imports the DB layer anyway

            record_status(task_id, status.value, **outcome)


def _hand_back(attempt: fencing.Attempt) -> Reject:
    """An attempt that lost its lease neither publishes nor acks: its delivery goes back to the broker (a no-op
    when another worker already holds it), and the attempt that holds the lease decides the outcome."""
    return Reject(LeaseLost(f"task {attempt.task_id} attempt {attempt.token}: {attempt.lost}"), requeue=True)


def _final_status(exc: BaseException) -> TaskStatus:
    # SystemExit is how a pool child unwinds on revoke(terminate=True): the job was cancelled.
    return TaskStatus.CANCELLED if isinstance(exc, Cancelled | SystemExit) else TaskStatus.FAILED


def _queues(spec: AppSpec, settings: Settings, limits: Mapping[TaskName, TimeLimit]) -> list[Queue]:
    if settings.broker_is_redis:
        return [Queue(str(q), routing_key=str(q)) for q in spec.queues]
    arguments = {"x-max-priority": MAX_PRIORITY}
    return [Queue(str(q), routing_key=str(q), queue_arguments=arguments,
                  consumer_arguments=consumer_arguments(q, settings, limits)) for q in spec.queues]


def _beat_probe(spec: AppSpec, settings: Settings) -> dict[str, dict[str, Any]]:
    """With BEAT_PROBE_INTERVAL_S, the beat also sends its app's ping task: a heartbeat that shows one live beat
    (and only one: the RedBeat lock) is sending on schedule."""
    interval_s = settings.beat_probe_interval_s
    ping = f"{spec.name}_ping"
    if interval_s is None or ping not in TaskName._value2member_map_:
        return {}
    return {"beat-probe": {"task": ping, "schedule": timedelta(seconds=interval_s), "options": {"expires": interval_s}}}


def _visibility_options(spec: AppSpec, settings: Settings) -> dict[str, Any]:
    """Redis only: a delivery's visibility is a lease of LEASE_TIMEOUT_S that its worker renews every
    LEASE_RENEW_S (redis_transport, leases/renewal), whatever the task's length or ETA."""
    return {
        "visibility_timeout": settings.lease_timeout_s,
        "lease_renew_interval": settings.lease_renew_interval_s,
        # kombu sweeps for expired deliveries every interval x throttle (default 10 x 10 s): every interval.
        "unacked_restore_interval": settings.unacked_restore_interval_s,
        "unacked_restore_throttle": 1,
        # The sweep's mutex outlives a worker killed while sweeping (kombu's default 300 s would stall every
        # restore that long); a sweep takes milliseconds.
        "unacked_mutex_expire": max(10, int(settings.lease_timeout_s)),
        # One index per app: each app's workers sweep their own deliveries.
        "unacked_key": f"unacked:{spec.name}",
        "unacked_index_key": f"unacked_index:{spec.name}",
        "unacked_mutex_key": f"unacked_mutex:{spec.name}",
    }


def build_config(spec: AppSpec, settings: Settings) -> dict[str, Any]:
    """The Celery configuration of one app, from the settings."""
    limits = spec.time_limits(settings)
    longest_hard_s = max(limit.hard_s for limit in limits.values())
    redis_broker = settings.broker_is_redis
    transport_options: dict[str, Any] = {}
    if redis_broker:
        transport_options = {
            **_visibility_options(spec, settings),
            "queue_order_strategy": "priority",
            "priority_steps": REDIS_PRIORITY_STEPS,
        }
    return {
        "broker_url": settings.broker_url,
        "result_backend": fenced_url(settings.result_backend),  # results stored only by the lease holder
        "broker_connection_retry_on_startup": True,
        "broker_transport": REDIS_TRANSPORT if redis_broker else None,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        # Workers send task events (-E) so Flower shows every task; a "sent" event per message would roughly
        # double the cost of publishing a webhook (bench/webhooks.py), for a state Flower can do without.
        "task_send_sent_event": False,
        "worker_send_task_events": True,
        "result_expires": RESULT_EXPIRES_S,
        "result_extended": True,
        "task_time_limit": longest_hard_s,
        "task_soft_time_limit": max(limit.soft_s for limit in limits.values()),
        "task_annotations": {
            str(name): {"soft_time_limit": limit.soft_s, "time_limit": limit.hard_s} for name, limit in limits.items()
        },
        "task_queues": _queues(spec, settings, limits),
        "task_default_queue": str(spec.queues[-1]),
        "task_routes": {str(name): {"queue": str(queue)} for name, queue in TASK_QUEUE.items()},
        "task_default_priority": transport_priority(DEFAULT_PRIORITY, broker_is_redis=redis_broker),
        "task_queue_max_priority": None if redis_broker else MAX_PRIORITY,
        "timezone": settings.beat_timezone,
        "enable_utc": True,
        "beat_schedule": {**spec.beat_schedule(settings), **_beat_probe(spec, settings)},
        "beat_scheduler": "geminivideo.beat:ResilientRedBeatScheduler",  # RedBeat that survives Redis restarts
        "beat_max_loop_interval": 5,
        "redbeat_redis_url": settings.redis_url,
        "redbeat_key_prefix": f"redbeat:{spec.name}:",
        "redbeat_lock_key": f"redbeat:{spec.name}::lock",
        "redbeat_lock_timeout": 30,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def make_celery(spec: AppSpec) -> Celery:
    app = Celery(f"geminivideo.{spec.name}", include=list(spec.include), task_cls=GeminiTask, set_as_current=False)
    app.add_defaults(lambda: build_config(spec, get_settings()))
    celery_hooks.install()  # metrics, log fields and trace context for every task (geminivideo.telemetry)
    return app


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    """Pool children must not reuse the parent's sockets."""
    reset_redis()
    from geminivideo.db.session import dispose_engine

    dispose_engine()


@after_setup_logger.connect
def _mask_credentials_in_logs(**_: Any) -> None:
    """Worker and beat logs never show the password of a broker or database URL."""
    from geminivideo.security import masking

    masking.install()


@task_revoked.connect
def _publish_cancelled(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    if request is None or not getattr(request, "id", None):
        return
    reason = "expired" if expired else ("terminated" if terminated else "revoked")
    ProgressPublisher(get_redis(), request.id).publish(TaskStatus.CANCELLED, None, f"task {reason}")
    if getattr(sender, "records_video_job", False):
        from geminivideo.db.jobs import record_status

        record_status(request.id, TaskStatus.CANCELLED.value, error=f"task {reason}")
