"""The Redis visibility timeout, per queue: what it is set to, and that a task held by a live worker is never
restored early.

The kill -9 redelivery times themselves are measured with real tasks in test_worker_killed.py. Here:

- Given the shipped limits, each queue's visibility timeout covers the hard limit of every task routed to
  it, the apps keep separate unacknowledged indexes, and kombu sweeps every UNACKED_RESTORE_INTERVAL_S.
- Given a task sent with a countdown longer than its queue's visibility timeout (what a retry with backoff
  is), when two live workers consume that queue, then it runs exactly once, at its ETA: the delivery's
  deadline moves with the ETA, so the other worker's sweep does not restore it while it waits.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from geminivideo.celery_base import AppSpec, build_config
from geminivideo.config import Settings
from geminivideo.contracts import TASK_QUEUE
from geminivideo.ml import celery_app as ml_app
from geminivideo.redis_transport import TRANSPORT_PATH, eta_delay_s
from geminivideo.video import celery_app as video_app
from tests.reliability import probe_tasks
from tests.reliability.conftest import MakeDeployment

pytestmark = [pytest.mark.reliability]

SPECS = (ml_app.SPEC, video_app.SPEC)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_queue_timeout_covers_its_tasks_hard_limits(spec: AppSpec) -> None:
    settings = Settings()
    conf = build_config(spec, settings)
    options = conf["broker_transport_options"]
    assert conf["broker_transport"] == TRANSPORT_PATH
    per_queue = options["queue_visibility_timeouts"]
    for task, limit in spec.time_limits(settings).items():
        assert per_queue[str(TASK_QUEUE[task])] >= limit.hard_s + settings.visibility_margin_s, task
    assert options["visibility_timeout"] == max(per_queue.values())
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] == settings.unacked_restore_interval_s
    assert options["unacked_index_key"] == f"unacked_index:{spec.name}"


def test_webhooks_do_not_wait_for_the_longest_ml_task() -> None:
    per_queue = build_config(ml_app.SPEC, Settings())["broker_transport_options"]["queue_visibility_timeouts"]
    assert per_queue["hubspot-webhook-events"] <= 5 * 60 < per_queue["fatigue-monitoring"]


def test_eta_delay_reads_celery_eta_headers() -> None:
    now = time.time()
    soon = datetime.fromtimestamp(now + 30, UTC)
    assert eta_delay_s({"eta": soon.isoformat()}, now) == pytest.approx(30, abs=0.01)
    assert eta_delay_s({"eta": (soon - timedelta(minutes=5)).isoformat()}, now) == 0.0
    assert eta_delay_s({"eta": None}, now) == 0.0
    assert eta_delay_s({"eta": "not a date"}, now) == 0.0
    assert eta_delay_s(None, now) == 0.0


@pytest.mark.slow
def test_a_countdown_longer_than_the_visibility_timeout_runs_once(deployment: MakeDeployment) -> None:
    dep = deployment()
    queue = "ml-default"  # its tasks' hard limit is 15 s: visibility 20 s with the suite's 5 s margin
    visibility = build_config(ml_app.SPEC, Settings(visibility_margin_s=5))[
        "broker_transport_options"]["queue_visibility_timeouts"][queue]
    dep.worker("ml", [queue], name="holder")
    dep.worker("ml", [queue], name="other")
    countdown = visibility + 12
    sent_at = time.time()
    result = dep.app("ml").send_task(probe_tasks.ML_PROBE, args=["held", 0.5, None], queue=queue, countdown=countdown)
    assert result.get(timeout=countdown + 60)["key"] == "held"
    time.sleep(3)  # a wrongly restored copy would start right after the first one
    starts = dep.starts("held")
    assert len(starts) == 1, f"ran {len(starts)} times: restored while a worker held it for its ETA"
    assert starts[0]["at"] - sent_at >= countdown - 1
    print(f"countdown {countdown:.0f} s on a queue with a {visibility:.0f} s visibility timeout: ran once, "
          f"{starts[0]['at'] - sent_at:.1f} s after sending")
