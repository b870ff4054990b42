"""monitor_all_ads_fatigue and execute_approved_changes on a real ML worker, on SQLite and PostgreSQL.

Given generated histories with known fatigue onsets (and healthy, small noisy, stalling and new ads), when
the monitor task runs on a worker, then it flags the fatigued and saturated ads, leaves the others
non-critical, stores the reports and queues exactly one proposal per critical ad; a second run (through
the ``monitor_fatigue`` alias) queues none; an approved proposal is executed by the executor task and a
rejected one is not.

Tasks go to a queue private to this test's worker, so the session-wide ML worker (on SQLite) never takes a
task meant for the PostgreSQL run.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.db.models import Ad
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions import approvals, fatigue
from geminivideo.ml.decisions.datagen import DatasetSpec, Profile, generate_ad_histories
from geminivideo.ml.tasks import execute_approved_changes, monitor_all_ads_fatigue, monitor_fatigue
from geminivideo.procs import wait_until
from geminivideo.progress import read_status
from tests.conftest import StartWorker

TIMEOUT_S = 120


def test_monitor_task_flags_known_fatigue_and_queues_one_proposal_per_ad(
    database_url: str, tenant: str, start_worker: StartWorker, redis_client: redis.Redis
) -> None:
    dataset = generate_ad_histories(DatasetSpec(n_ads=150, days=30, seed=20260101, tenant_id=tenant))
    queue = f"decisions-{uuid.uuid4().hex[:8]}"
    start_worker("ml", queues=[queue], DATABASE_URL=database_url)

    async_result = monitor_all_ads_fatigue.apply_async(kwargs={"tenant_id": tenant, "chunk_size": 40}, queue=queue)
    result = async_result.get(timeout=TIMEOUT_S)

    assert result["ads_scanned"] == 150 and result["as_of"] == dataset.spec.last_day.isoformat()
    # The result is stored just before on_success publishes the final status: wait for it briefly.
    wait_until(lambda: getattr(read_status(redis_client, async_result.id), "status", None) == TaskStatus.COMPLETED,
               10, what="completed status of the scan")
    report = fatigue.fatigue_report(tenant_id=tenant, scan_id=result["scan_id"], limit=1000)
    assert report is not None and len(report["reports"]) == 150
    critical = {r["ad_id"] for r in report["reports"] if r["severity"] == "critical"}
    expected = {ad for ad, truth in dataset.truth.items() if truth.expect_critical}
    recall = len(critical & expected) / len(expected)
    assert recall >= 0.9, f"recall {recall:.2f}"
    false = critical - expected
    assert not false, f"false criticals: {[(ad, dataset.truth[ad].profile) for ad in false]}"
    by_ad = {r["ad_id"]: r for r in report["reports"]}
    assert all(by_ad[ad]["status"] == "INSUFFICIENT_DATA" for ad in dataset.ids_with(Profile.NEW))

    proposals = approvals.list_changes("pending_approval", tenant_id=tenant, limit=1000)
    assert sorted(p.ad_id for p in proposals) == sorted(critical), "one proposal per critical ad"
    assert result["proposals_created"] == len(critical)
    for p in proposals:
        kind = "budget" if by_ad[p.ad_id]["status"] == "SATURATED" else "pause"
        assert p.change_type == kind and p.source == "fatigue_monitor" and p.evidence["scan_id"] == result["scan_id"]

    again = monitor_fatigue.apply_async(kwargs={"tenant_id": tenant}, queue=queue).get(timeout=TIMEOUT_S)
    assert again["proposals_created"] == 0 and again["critical"] == result["critical"]
    assert len(approvals.list_changes("pending_approval", tenant_id=tenant, limit=1000)) == len(proposals)

    with session_scope() as session:
        assert {ad.status for ad in session.query(Ad).filter(Ad.tenant_id == tenant)} == {"active"}, \
            "nothing is paused before a person approves"

    pause = next(p for p in proposals if p.change_type == "pause")
    keep = next(p for p in proposals if p.id != pause.id)
    approvals.approve_change(pause.id, "ops@example.com", "creative is worn out")
    approvals.reject_change(keep.id, "ops@example.com", "seasonal dip")
    executed = execute_approved_changes.apply_async(kwargs={"limit": 50}, queue=queue).get(timeout=TIMEOUT_S)
    assert pause.id in executed["change_ids"] and keep.id not in executed["change_ids"]
    assert approvals.show_change(pause.id).status == "executed"
    assert approvals.show_change(keep.id).status == "rejected"
    with session_scope() as session:
        assert session.get(Ad, pause.ad_id).status == "paused"  # type: ignore[union-attr]
        assert session.get(Ad, keep.ad_id).status == "active"  # type: ignore[union-attr]

    assert_bad_options_fail_at_once(queue)


def assert_bad_options_fail_at_once(queue: str) -> None:
    """Invalid scan options fail on the worker at once, naming every bad field (no retries)."""
    started = time.monotonic()
    async_result = monitor_all_ads_fatigue.apply_async(kwargs={"chunk_size": 0, "lookbak_days": 3}, queue=queue)
    with pytest.raises(InvalidPayload) as failure:
        async_result.get(timeout=TIMEOUT_S)
    assert "chunk_size" in str(failure.value) and "lookbak_days" in str(failure.value)
    assert async_result.state == "FAILURE" and time.monotonic() - started < 10
