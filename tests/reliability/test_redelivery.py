"""Redis visibility as a renewable lease: what it is set to, and that a task held by a live worker is never
restored early, however long it waits.

The kill -9 redelivery times themselves are measured with real tasks in test_worker_killed.py and
test_leases.py. Here:

- Given the shipped settings, every Redis delivery is a lease of LEASE_TIMEOUT_S renewed every LEASE_RENEW_S,
  the apps keep separate unacknowledged indexes, and kombu sweeps every UNACKED_RESTORE_INTERVAL_S.
- Given a task sent with a countdown several leases long (what a retry with backoff is), when two live workers
  consume that queue, then it runs exactly once, at its ETA: the holder renews the delivery while it waits,
  so the other worker's sweep does not restore it.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from geminivideo.celery_base import AppSpec, build_config
from geminivideo.config import Settings
from geminivideo.ml import celery_app as ml_app
from geminivideo.redis_transport import TRANSPORT_PATH
from geminivideo.video import celery_app as video_app
from tests.reliability import probe_tasks
from tests.reliability.conftest import MakeDeployment

pytestmark = [pytest.mark.reliability]

SPECS = (ml_app.SPEC, video_app.SPEC)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_redis_delivery_is_a_renewed_lease(spec: AppSpec) -> None:
    settings = Settings()
    conf = build_config(spec, settings)
    options = conf["broker_transport_options"]
    assert conf["broker_transport"] == TRANSPORT_PATH
    assert options["visibility_timeout"] == settings.lease_timeout_s == 60
    assert options["lease_renew_interval"] == settings.lease_renew_interval_s == 15
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] == settings.unacked_restore_interval_s
    assert options["unacked_mutex_expire"] <= settings.lease_timeout_s
    assert options["unacked_index_key"] == f"unacked_index:{spec.name}"


def test_lease_renewal_must_be_shorter_than_the_lease() -> None:
    assert Settings(lease_timeout_s=8).lease_renew_interval_s == 2
    with pytest.raises(ValidationError, match="LEASE_RENEW_S"):
        Settings(lease_timeout_s=8, lease_renew_s=8)


@pytest.mark.slow
def test_a_countdown_longer_than_the_visibility_timeout_runs_once(deployment: MakeDeployment) -> None:
    dep = deployment(LEASE_TIMEOUT_S="4")
    queue = "ml-default"
    visibility = 4.0  # the lease: a delivery nobody renewed for 4 s is restored
    dep.worker("ml", [queue], name="holder")
    dep.worker("ml", [queue], name="other")
    countdown = 5 * visibility
    sent_at = time.time()
    result = dep.app("ml").send_task(probe_tasks.ML_PROBE, args=["held", 0.5, None], queue=queue, countdown=countdown)
    assert result.get(timeout=countdown + 60)["key"] == "held"
    time.sleep(3)  # a wrongly restored copy would start right after the first one
    starts = dep.starts("held")
    assert len(starts) == 1, f"ran {len(starts)} times: restored while a worker held it for its ETA"
    assert int(dep.client().zcard("unacked_index:ml")) == 0
    assert starts[0]["at"] - sent_at >= countdown - 1
    print(f"countdown {countdown:.0f} s with a {visibility:.0f} s lease: ran once, "
          f"{starts[0]['at'] - sent_at:.1f} s after sending")
