"""RabbitMQ's delivery acknowledgement timeout, set so a long task never trips it.

RabbitMQ closes a consumer's channel (PRECONDITION_FAILED) when one of its deliveries stays unacknowledged
longer than ``consumer_timeout`` (30 minutes by default). With late acks, a render longer than that — or a
retry held for its countdown — loses its channel and runs again elsewhere. RabbitMQ needs no renewal (a dead
consumer's deliveries come back as soon as its connection drops); the timeout only has to outlast the task.

- RabbitMQ 3.12 and later (and 3.11.15+) take a per-consumer timeout, the ``x-consumer-timeout`` argument of
  ``basic.consume``: each queue's consumers get its longest hard time limit + the longest retry countdown +
  ``VISIBILITY_MARGIN_S``. A consumer argument, unlike a queue argument, needs no queue re-declaration, so
  existing queues keep working.
- RabbitMQ 3.10 and 3.11 before .15 ignore that argument (measured on 3.10.8); there the server setting
  ``consumer_timeout`` must be raised: ``deploy/rabbitmq/rabbitmq.conf`` (compose), or at runtime
  ``rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, N).'`` (applies to new channels).
  ``server_timeout_ms`` gives the value that covers every queue of both apps.
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
