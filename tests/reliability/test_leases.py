"""Leases on Redis with real workers: a dead worker's task comes back within the lease, a live worker's never does.

- Given a video worker encoding with FFmpeg (a real-time probe encode), when its whole process group is killed
  with ``kill -9`` mid-encode, then a second, idle worker starts the task within LEASE_TIMEOUT_S + 15 s of the
  kill and completes it exactly once: one valid output, progress ``completed``, nothing left unacknowledged.
- Given two live workers and tasks that run 5x LEASE_TIMEOUT_S, then each task starts exactly once: the
  holder's renewals keep the deliveries invisible to the other worker's restore sweep.
- Given a webhook batch whose lease passes to a newer attempt mid-batch, the old attempt applies nothing more.

The lease is shortened to seconds through the settings (LEASE_TIMEOUT_S, LEASE_RENEW_S = a quarter of it).
"""

from __future__ import annotations

import time
from typing import cast

import pytest

from geminivideo.contracts import TaskStatus
from geminivideo.video.ffmpeg import is_partial
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.reliability.hubspot_stack import WebhookStack, crm_stand_in, post_three_deal_batch
from tests.support import faults
from tests.support.media import ffprobe

pytestmark = [pytest.mark.reliability]

QUEUE = "render_queue"
IDLE_QUEUE = "maintenance"  # the rescuer's queue until the victim holds the task (nothing is sent there)
LEASE_S = 8.0
RESTORE_SLACK_S = 15.0  # what the issue allows beyond the lease: sweep interval, the rescuer's pick-up


def _unacked(dep: Deployment, app: str = "video") -> int:
    return int(dep.client().zcard(f"unacked_index:{app}"))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill9_mid_encode_comes_back_within_the_lease_and_completes_once(deployment: MakeDeployment) -> None:
    dep = deployment(LEASE_TIMEOUT_S=str(LEASE_S), RENDER_TIMEOUT="120")
    log = dep.progress_log()
    victim = dep.worker("video", [QUEUE], name="victim")
    rescuer = dep.worker("video", [IDLE_QUEUE], name="rescuer")
    key, seconds = "killed", 24.0
    result = dep.probe("video", key, seconds, queue=QUEUE, output_dir=dep.render_dir, encode=True)
    faults.wait_for(lambda: dep.starts(key), 60, "the victim started the task")
    reply = dep.app("video").control.add_consumer(QUEUE, destination=[str(rescuer.extra["hostname"])], reply=True,
                                                  timeout=10)
    assert reply, "the rescuer did not take the render queue"
    faults.wait_for(lambda: dep.status(result.id) is TaskStatus.PROCESSING, 30, "encoding")
    time.sleep(4)  # well into the encode: FFmpeg runs, the partial output grows, renewals have happened
    assert [p for p in dep.render_dir.iterdir() if is_partial(p)], "no partial output: not mid-encode"
    killed_at = time.time()
    faults.kill9(victim)

    value = result.get(timeout=LEASE_S + RESTORE_SLACK_S + seconds + 60)
    starts = dep.starts(key)
    assert [s["hostname"] for s in starts] == [victim.extra["hostname"], rescuer.extra["hostname"]], starts
    back_after_kill = starts[1]["at"] - killed_at
    assert back_after_kill <= LEASE_S + RESTORE_SLACK_S, back_after_kill
    assert [s["token"] for s in starts] == [1, 2]
    assert [d["hostname"] for d in dep.done(key)] == [rescuer.extra["hostname"]]
    faults.wait_for(lambda: dep.status(result.id) is TaskStatus.COMPLETED, 10, "progress completed")
    outputs = [p for p in dep.render_dir.iterdir() if not p.name.startswith(".")]
    assert [p.name for p in outputs] == [f"{key}.mp4"] and value["output"] == str(outputs[0])
    assert ffprobe(outputs[0]).duration == pytest.approx(seconds, abs=0.5)
    assert _unacked(dep) == 0
    tokens = {e.lease_token for _, e in log.of(result.id) if e.status is not TaskStatus.QUEUED}
    assert tokens == {1, 2}, tokens
    print(f"lease {LEASE_S:.0f} s: kill -9 {killed_at - starts[0]['at']:.1f} s into the encode; rerun started "
          f"{back_after_kill:.1f} s after the kill on the rescuer; completed once")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_tasks_five_leases_long_on_live_workers_start_once(deployment: MakeDeployment) -> None:
    lease_s = 6.0
    dep = deployment(LEASE_TIMEOUT_S=str(lease_s))
    queue = "ml-default"
    dep.worker("ml", [queue], name="one", concurrency=2)
    dep.worker("ml", [queue], name="two", concurrency=2)
    keys = [f"long-{i}" for i in range(4)]
    results = [dep.probe("ml", key, 5 * lease_s, queue=queue) for key in keys]
    for result in results:
        result.get(timeout=5 * lease_s * 2 + 60)
    time.sleep(lease_s + 3)  # a delivery restored late would start now
    counts = {key: len(dep.starts(key)) for key in keys}
    assert counts == dict.fromkeys(keys, 1), f"duplicated while their workers lived: {counts}"
    assert all(len(dep.done(key)) == 1 for key in keys)
    assert _unacked(dep, "ml") == 0
    print(f"{len(keys)} tasks of {5 * lease_s:.0f} s (5 leases) on two live workers: each started once")


@pytest.mark.timeout(240)
def test_a_webhook_batch_taken_over_mid_flight_stops_applying(deployment: MakeDeployment, pg_database: str) -> None:
    """Given a signed 3-deal HubSpot batch (one message) on an ML worker and a CRM that answers in 3 s, when the
    batch's lease passes to a newer attempt while it waits on the CRM for its second deal (the token moves on,
    as a second worker's start moves it), then the old attempt applies nothing more — not the deal whose CRM
    answer it was waiting for — and hands the batch back; the batch is applied once per deal."""
    with crm_stand_in(delay_s=3) as crm:
        dep = deployment(DATABASE_URL=pg_database, HUBSPOT_ACCESS_TOKEN="test-token", HUBSPOT_API_BASE_URL=crm.url,
                         LEASE_TIMEOUT_S=str(LEASE_S))
        stack = WebhookStack(dep)
        base = stack.start_api()
        stack.worker("holder")
        portal, deals, keys = post_three_deal_batch(stack, base)
        faults.wait_for(lambda: crm.hits_for(deals[1]) == 1, 60, "the batch waits on the CRM for its second deal")
        (token_key,) = dep.client().keys("lease_token:*")
        assert dep.client().incr(token_key) == 2  # the takeover: attempt 1 is no longer current
        events = stack.wait_final(keys)
        tenant = f"hubspot-portal-{portal}"
        books = [stack.books(tenant, deal) for deal in deals]
        assert [e["status"] for e in events.values()] == ["processed"] * 3, events
        assert [b.conversions for b in books] == [[("contractsent", 9000.0)]] * 3
        # Deal 1 applied by attempt 1 before the takeover; deal 2's first CRM answer was not applied (asked again
        # by attempt 3, the redelivery); deal 3 asked once, by attempt 3.
        assert [crm.hits_for(deal) for deal in deals] == [1, 2, 1]
        assert int(cast(str, dep.client().get(token_key))) == 3
        assert _unacked(dep, "ml") == 0
