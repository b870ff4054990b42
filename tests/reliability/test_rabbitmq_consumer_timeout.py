"""RabbitMQ's consumer timeout: given a broker whose ``consumer_timeout`` is 20 s (lowered for the test instead of
waiting the default 30 minutes) and the project's deploy step (``python -m geminivideo.leases.rabbitmq --apply``,
what RabbitMQ 3.10/3.11 need; 3.12+ also honour the per-consumer argument the workers send), when a task runs
60 s with late acks, then it completes once, its worker's channel stays open (the same channel consumes before
and after), and the consumer carries ``x-consumer-timeout`` covering its queue's limits.

Without the step the same broker closes the channel at 20 s (PRECONDITION_FAILED, "delivery acknowledgement
on channel 1 timed out"), measured on 3.10.8 with the argument set on the consumer and on the queue alike.
The server setting is global: the fixture restores the previous value even when the test fails.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from geminivideo.leases import rabbitmq
from tests.reliability.conftest import MakeDeployment

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

QUEUE = "render_queue"
LOWERED_MS = 20_000
TASK_S = 60.0


@pytest.fixture
def lowered_consumer_timeout(rabbit_url: str) -> Iterator[str]:
    before = rabbitmq.server_timeout()
    rabbitmq.apply_server_timeout(LOWERED_MS)
    try:
        yield rabbit_url
    finally:
        rabbitmq.apply_server_timeout(before)


def _consumers(vhost: str) -> list[list[str]]:
    done = subprocess.run(["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name", "channel_pid",
                           "arguments"], capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line.startswith(QUEUE)]


@pytest.mark.timeout(300)
def test_a_task_longer_than_the_consumer_timeout_completes_once(lowered_consumer_timeout: str,
                                                                 deployment: MakeDeployment) -> None:
    dep = deployment(broker_url=lowered_consumer_timeout, RENDER_TIMEOUT="90")
    vhost = urlsplit(lowered_consumer_timeout).path.lstrip("/")
    assert rabbitmq.server_timeout() == LOWERED_MS
    step = subprocess.run([sys.executable, "-m", "geminivideo.leases.rabbitmq", "--apply"], env=dep.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert step.returncode == 0, step.stderr
    applied = rabbitmq.server_timeout()
    assert applied is not None and applied > TASK_S * 1000, applied
    dep.worker("video", [QUEUE], name="long")
    before = _consumers(vhost)
    assert len(before) == 1 and "x-consumer-timeout" in before[0][2], before
    result = dep.probe("video", "long", TASK_S, queue=QUEUE)
    assert result.get(timeout=TASK_S + 90)["key"] == "long"
    after = _consumers(vhost)
    assert [s["redelivered"] for s in dep.starts("long")] == [False], dep.starts("long")
    assert len(dep.done("long")) == 1
    assert after == before, f"the worker's channel was replaced: {before} -> {after}"
    log_text = "".join(p.read_text(errors="replace") for p in dep.log_dir.glob("*.log"))
    assert "PRECONDITION_FAILED" not in log_text
    print(f"rabbitmq consumer_timeout lowered to {LOWERED_MS} ms, deploy "
          f"step raised it to {applied} ms: a {TASK_S:.0f} s task completed once on the same channel; consumer "
          f"arguments {before[0][2]}")
