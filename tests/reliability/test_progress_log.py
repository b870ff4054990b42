"""The reliability suite's own progress recorder: a malformed progress message is counted and fails the test
that reads it, instead of disappearing (it would hide a protocol bug behind a missing event)."""

from __future__ import annotations

import pytest

from geminivideo import procs
from geminivideo.contracts import TaskStatus, utcnow
from tests.reliability.conftest import MakeDeployment

pytestmark = [pytest.mark.reliability]


def test_a_malformed_progress_message_is_counted_and_fails_the_reader(deployment: MakeDeployment) -> None:
    dep = deployment()
    log = dep.progress_log()
    client = dep.client()
    procs.wait_until(lambda: client.pubsub_numpat() >= 1, 10, what="the recorder's subscription")
    valid = f'{{"task_id": "t1", "progress": 10, "status": "processing", "message": "", "timestamp": "{utcnow()}"}}'
    client.publish("task_progress:t1", valid)
    client.publish("task_progress:t1", '{"task_id": "t1", "progress": "lots", "status": "processing"}')
    procs.wait_until(lambda: log.events and log.malformed, 10, what="both messages recorded")

    assert [e.status for _, e in log.events] == [TaskStatus.PROCESSING]
    assert len(log.malformed) == 1 and "task_progress:t1" in log.malformed[0] and "progress" in log.malformed[0]
    with pytest.raises(AssertionError, match="1 malformed progress message"):
        log.of("t1")
    log.malformed.clear()  # sent on purpose: the deployment's teardown would fail on it too
