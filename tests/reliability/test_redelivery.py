"""Given a worker killed with ``kill -9`` mid-task and a standby worker on the same queues, when the broker is
Redis, then each queue's task comes back after *that queue's* visibility timeout (not the app's longest),
and when the broker is RabbitMQ, then it comes back as soon as the dead worker's connection drops.

The probe task counts every start and completion in Redis: each task completes exactly once, and the
measured redelivery times are printed (``-s``) for tests/reliability/README.md.
"""

from __future__ import annotations

import time

import pytest

from geminivideo.celery_base import build_config
from geminivideo.config import Settings
from geminivideo.contracts import TaskStatus
from geminivideo.video import celery_app as video_app
from tests.reliability.conftest import FAST_FAULTS, MakeDeployment
from tests.support import faults

pytestmark = [pytest.mark.reliability]

# preview hard limit 1 + 30 s grace, render 12 + 30 s: with the 5 s margin, 36 s versus 47 s.
LIMITS = {"PREVIEW_TIMEOUT": "1", "RENDER_TIMEOUT": "12"}


def _visibility(queue: str) -> float:
    settings = Settings(**{k.lower(): v for k, v in {**FAST_FAULTS, **LIMITS}.items()})  # type: ignore[arg-type]
    return float(build_config(video_app.SPEC, settings)["broker_transport_options"]["queue_visibility_timeouts"][queue])


def _run_then_kill(dep, queues: list[str], seconds: dict[str, float]) -> tuple[float, dict[str, object]]:
    """Start a victim worker, give it one probe per queue, start an idle standby, then ``kill -9`` the victim.

    Returns the kill time and the results."""
    victim = dep.worker("video", queues, name="victim", concurrency=len(queues))
    results = {key: dep.probe("video", key, secs, queue=f"{key}_queue", output_dir=dep.render_dir)
               for key, secs in seconds.items()}
    faults.wait_for(lambda: all(dep.starts(k) for k in seconds), 60, "probes started on the victim")
    dep.worker("video", queues, name="standby", concurrency=len(queues))
    assert all(len(dep.starts(k)) == 1 for k in seconds), "a probe finished or moved before the kill"
    killed_at = time.time()
    faults.kill9(victim)
    assert not faults.group_alive(victim)
    return killed_at, results


def _check_once(dep, key: str, result) -> list[dict]:
    """Completed exactly once, after one redelivery; one final output; progress ends completed."""
    starts, done = dep.starts(key), dep.done(key)
    assert len(done) == 1, f"{key} completed {len(done)} times"
    assert len(starts) == 2 and starts[1]["redelivered"], starts
    assert (dep.render_dir / f"{key}.bin").stat().st_size > 0
    # The result is stored before on_success publishes ``completed``: allow that moment.
    faults.wait_for(lambda: dep.status(result.id) is TaskStatus.COMPLETED, 10, f"{key} progress completed")
    return starts


@pytest.mark.slow
def test_redis_restores_each_queue_after_its_own_visibility_timeout(deployment: MakeDeployment) -> None:
    dep = deployment(**LIMITS)
    killed_at, results = _run_then_kill(dep, ["render_queue", "preview_queue"], {"render": 20, "preview": 20})
    for key in ("render", "preview"):
        assert results[key].get(timeout=120)["key"] == key
    for key in ("render", "preview"):
        starts = _check_once(dep, key, results[key])
        back_after = starts[1]["at"] - starts[0]["at"]
        visibility = _visibility(f"{key}_queue")
        print(f"redis {key}_queue: visibility {visibility:.0f} s, back {back_after:.1f} s after delivery, "
              f"{starts[1]['at'] - killed_at:.1f} s after kill -9")
        # Never before its own timeout (a running task would be doubled), within a sweep or two after it.
        assert visibility - 1 <= back_after <= visibility + 6
    assert dep.starts("preview")[1]["at"] < dep.starts("render")[1]["at"]


def test_rabbitmq_redelivers_as_soon_as_the_worker_dies(deployment: MakeDeployment, rabbit_url: str) -> None:
    dep = deployment(broker_url=rabbit_url, **LIMITS)
    killed_at, results = _run_then_kill(dep, ["render_queue", "preview_queue"], {"render": 15, "preview": 15})
    for key in ("render", "preview"):
        assert results[key].get(timeout=60)["key"] == key
    for key in ("render", "preview"):
        starts = _check_once(dep, key, results[key])
        back = starts[1]["at"] - killed_at
        print(f"rabbitmq {key}_queue: back {back:.1f} s after kill -9")
        assert back < 5
