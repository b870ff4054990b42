"""How long RabbitMQ may leave a delivery unacknowledged, per queue and server-wide (see ``leases.rabbitmq``).

Pure arithmetic over the apps' time limits, imported by ``celery_base`` for the consumers' ``x-consumer-timeout``
argument; the broker-side operations (reading and raising ``consumer_timeout``) stay in ``leases.rabbitmq``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from geminivideo.config import Settings
from geminivideo.contracts import TASK_QUEUE, QueueName, TaskName

RETRY_COUNTDOWN_MAX_S = 300  # GeminiTask.retry_backoff_max: the longest a retry waits unacknowledged for its ETA


class _Limit(Protocol):
    @property
    def hard_s(self) -> int: ...


def consumer_timeout_s(queue: QueueName | str, settings: Settings, limits: Mapping[TaskName, _Limit]) -> float:
    """How long a delivery of ``queue`` may stay unacknowledged: longest hard limit + retry countdown + margin."""
    hard = [limit.hard_s for task, limit in limits.items() if str(TASK_QUEUE.get(task)) == str(queue)]
    longest = max(hard) if hard else max(limit.hard_s for limit in limits.values())
    return float(longest + RETRY_COUNTDOWN_MAX_S + settings.visibility_margin_s)


def consumer_arguments(queue: QueueName | str, settings: Settings, limits: Mapping[TaskName, _Limit]
                       ) -> dict[str, Any]:
    """``basic.consume`` arguments of ``queue``'s consumers (RabbitMQ >= 3.12 honours them)."""
    return {"x-consumer-timeout": int(consumer_timeout_s(queue, settings, limits) * 1000)}


def server_timeout_ms(settings: Settings, all_limits: Iterable[Mapping[TaskName, _Limit]]) -> int:
    """The server-wide ``consumer_timeout`` (ms) that covers every queue: what RabbitMQ 3.10/3.11 need."""
    longest = max(consumer_timeout_s(queue, settings, limits)
                  for limits in all_limits for queue in {str(TASK_QUEUE[t]) for t in limits if t in TASK_QUEUE})
    return int(longest * 1000)
