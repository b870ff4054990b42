"""Given a worker running a task, when it gets SIGTERM (warm shutdown: docker stop, systemd, stop-workers.sh),
then it finishes that task, takes no new one and exits 0; the queued task behind it is not lost but runs on
the next worker. When it gets SIGQUIT (cold shutdown) mid-task, the late-acked task is requeued at once, not
after its lease lapses, and runs to completion elsewhere. Both on Redis and on RabbitMQ.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.reliability.conftest import MakeDeployment
from tests.support import faults

pytestmark = [pytest.mark.reliability]

QUEUES = ["render_queue"]
LIMITS = {"RENDER_TIMEOUT": "60"}  # Redis: the lease stays 60 s, so a requeue faster than that is not the sweep


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "redis" else request.getfixturevalue("rabbit_url")


def test_sigterm_finishes_the_running_task_and_leaves_the_queued_one(deployment: MakeDeployment,
                                                                     broker: str | None) -> None:
    dep = deployment(broker_url=broker, **LIMITS)
    worker = dep.worker("video", QUEUES, name="warm")
    running = dep.probe("video", "running", 4, queue="render_queue", output_dir=dep.render_dir)
    waiting = dep.probe("video", "waiting", 1, queue="render_queue", output_dir=dep.render_dir)
    faults.wait_for(lambda: dep.starts("running"), 30, "first task started")
    signalled = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)  # the main process only, as docker stop and systemd do
    code = worker.popen.wait(timeout=60)
    exited_after = time.monotonic() - signalled
    assert code == 0, worker.log_tail()
    assert not faults.group_alive(worker)
    assert len(dep.done("running")) == 1 and running.get(timeout=5)["key"] == "running"
    assert dep.starts("waiting") == [], "the worker took a new task after SIGTERM"
    print(f"warm shutdown ({'rabbitmq' if broker else 'redis'}): exited {exited_after:.1f} s after SIGTERM")

    dep.worker("video", QUEUES, name="next")
    assert waiting.get(timeout=60)["key"] == "waiting"
    assert len(dep.starts("waiting")) == 1 and len(dep.done("waiting")) == 1
    assert len(dep.starts("running")) == 1  # the finished task did not come back


def test_sigquit_requeues_the_running_task_at_once(deployment: MakeDeployment, broker: str | None) -> None:
    dep = deployment(broker_url=broker, **LIMITS)
    worker = dep.worker("video", QUEUES, name="cold")
    task = dep.probe("video", "long", 12, queue="render_queue", output_dir=dep.render_dir)
    faults.wait_for(lambda: dep.starts("long"), 30, "task started")
    dep.worker("video", QUEUES, name="standby")
    signalled = time.time()
    worker.popen.send_signal(signal.SIGQUIT)
    worker.popen.wait(timeout=60)
    faults.wait_for(lambda: len(dep.starts("long")) == 2, 60, "task requeued")
    back = dep.starts("long")[1]["at"] - signalled
    print(f"cold shutdown ({'rabbitmq' if broker else 'redis'}): task back {back:.1f} s after SIGQUIT")
    assert back < 20  # well before the 60 s lease could lapse
    assert task.get(timeout=90)["key"] == "long"
    assert len(dep.done("long")) == 1
