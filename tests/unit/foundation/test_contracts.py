"""Contracts: names, routes and payload validation, without any heavy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from geminivideo.celery_base import transport_priority
from geminivideo.contracts import (
    ML_TASKS,
    QUEUE_PRIORITY,
    TASK_QUEUE,
    VIDEO_QUEUE_ORDER,
    VIDEO_TASKS,
    QueueName,
    RenderJob,
    TaskName,
    parse_payload,
)
from geminivideo.errors import InvalidPayload, PermanentError

DESIGN_TABLE = {
    "process_hubspot_webhook": "hubspot-webhook-events",
    "monitor_all_ads_fatigue": "fatigue-monitoring",
    "monitor_fatigue": "fatigue-monitoring",
    "auto_index_winners": "budget-optimization",
    "auto_index_winner": "budget-optimization",
    "render_video_task": "render_queue",
    "generate_preview_task": "preview_queue",
    "transcode_task": "transcode_queue",
    "caption_task": "caption_queue",
    "cleanup_task": "maintenance",
    "monitor_resources_task": "maintenance",
}


def test_every_task_of_the_design_table_has_its_queue() -> None:
    for task, queue in DESIGN_TABLE.items():
        assert TASK_QUEUE[TaskName(task)] == QueueName(queue)
    assert set(DESIGN_TABLE) <= {str(t) for t in (*ML_TASKS, *VIDEO_TASKS)}


def test_video_queues_drain_in_design_priority_order() -> None:
    ordered = [q for q in VIDEO_QUEUE_ORDER if q is not QueueName.MAINTENANCE]
    assert ordered == [QueueName.RENDER, QueueName.TRANSCODE, QueueName.CAPTION, QueueName.PREVIEW]
    assert [QUEUE_PRIORITY[q] for q in ordered] == [10, 7, 6, 5]


@pytest.mark.parametrize(
    ("seed", "redis_value", "amqp_value"), [(10, 0, 10), (0, 9, 0), (5, 5, 5), (7, 3, 7), (6, 4, 6), (99, 0, 10)]
)
def test_priorities_are_translated_for_the_transport(seed: int, redis_value: int, amqp_value: int) -> None:
    assert transport_priority(seed, broker_is_redis=True) == redis_value
    assert transport_priority(seed, broker_is_redis=False) == amqp_value


def test_more_urgent_always_sorts_first_on_redis() -> None:
    values = [transport_priority(p, broker_is_redis=True) for p in range(11)]
    assert values == sorted(values, reverse=True)


def test_invalid_payload_names_every_bad_field() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_payload(RenderJob, {"scenes": [{"video_path": "/a", "start_time": 5, "end_time": 2}],
                                  "output_format": {"width": 0}, "surprise": 1})
    message = str(caught.value)
    assert "scenes.0" in message and "end_time" in message
    assert "output_format.width" in message
    assert "surprise" in message
    assert isinstance(caught.value, PermanentError)


def test_contracts_import_pulls_in_nothing_heavy() -> None:
    code = ("import sys, geminivideo.contracts; heavy = {'torch', 'faiss', 'faster_whisper', 'celery', 'sqlalchemy'}"
            " & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
