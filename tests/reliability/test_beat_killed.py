"""Given two real video beats on one Redis (one holds the RedBeat lock and sends), when the sending beat is
killed with ``kill -9`` (it cannot release its lock) and then started again, then the standby takes over once
the dead beat's lock expires, the restarted beat waits as the new standby, and no schedule entry ever fires
twice in one period: not at the takeover, not after the restart.

The warm variant (SIGTERM releases the lock, takeover at once) is
tests/integration/housekeeping/test_beat_lock.py, whose fire-counting helpers this test reuses.
"""

from __future__ import annotations

import time

import pytest

from geminivideo import procs
from tests.integration.housekeeping.test_beat_lock import LOCK_ACQUIRED, FireLog, assert_no_double_fire, holder_of
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import faults

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

PERIODS = {"monitor_resources_task": 2.0, "video_ping": 2.0}
LOCK_TIMEOUT_S = 30  # redbeat_lock_timeout in celery_base.build_config


def _beat(dep: Deployment, name: str) -> procs.ManagedProcess:
    return dep.track(faults.start_beat("video", env=dep.env, log_path=dep.log_dir / f"{name}.log"))


def test_killed_beat_is_replaced_without_double_fires(deployment: MakeDeployment) -> None:
    dep = deployment(MONITOR_INTERVAL_S="2", BEAT_PROBE_INTERVAL_S="2")
    pair = [_beat(dep, "beat-a"), _beat(dep, "beat-b")]
    fires = FireLog(dep.client())
    procs.wait_until(lambda: fires.poll() >= 2, 60, what="first fires")
    start = time.monotonic()
    fires.watch(6)
    holder, standby = holder_of(pair)

    killed_at = time.monotonic()
    faults.kill9(holder)
    procs.wait_until(lambda: fires.poll() >= 0 and LOCK_ACQUIRED in standby.log_tail(500), LOCK_TIMEOUT_S + 20,
                     interval_s=0.2, what="takeover by the standby")
    takeover_s = time.monotonic() - killed_at
    restarted = _beat(dep, "beat-a-restarted")
    fires.watch(10)

    assert standby.alive() and restarted.alive()
    assert LOCK_ACQUIRED not in restarted.log_tail(500) and "Sending due task" not in restarted.log_tail(500)
    for task, period in PERIODS.items():
        times = fires.times(task)
        assert_no_double_fire(times, period, time.monotonic() - start + 2 * period)
        assert [t for t in times if t > killed_at + takeover_s + 1], f"{task} did not fire after the takeover"
    print(f"beat kill -9: standby took over after {takeover_s:.1f} s (lock timeout {LOCK_TIMEOUT_S} s), "
          "no entry fired twice in a period, the restarted beat waits as standby")
