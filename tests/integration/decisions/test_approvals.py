"""The approval queue on SQLite and PostgreSQL: decisions, one open proposal per ad, safety gates, failures.

Given ads in a campaign, when changes are proposed, decided and executed (the executor's domain function;
the task itself runs on real workers in test_fatigue_task and test_claiming), then nothing runs unapproved,
the 16th change in an hour and a 25 % budget move are blocked, and every outcome is recorded.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from geminivideo.contracts import utcnow
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import AdPlatformCall, ChangeStatus, ChangeType, PendingAdChange
from geminivideo.db.session import session_scope
from geminivideo.errors import DependencyUnavailable, InvalidPayload
from geminivideo.ml.decisions import approvals
from geminivideo.ml.platforms.client import AdPlatformRejected, PlatformAd, RecordingAdPlatformClient
from tests.integration.decisions.conftest import MakeCampaign


def ad_row(ad_id: str) -> Ad:
    with session_scope() as session:
        ad = session.get(Ad, ad_id)
        assert ad is not None
        return ad


def calls_for(change_id: int) -> list[AdPlatformCall]:
    with session_scope() as session:
        return list(session.scalars(select(AdPlatformCall).where(AdPlatformCall.change_id == change_id)))


def propose_and_approve(ad_id: str, kind: ChangeType, value: float | None = None) -> int:
    view = approvals.propose_change(ad_id, kind, value, reason="test")
    assert view is not None
    approvals.approve_change(view.id, "ops@example.com")
    return view.id


def test_nothing_is_executed_without_approval(make_campaign: MakeCampaign) -> None:
    (ad_id,) = make_campaign(1)
    pending = approvals.propose_change(ad_id, ChangeType.PAUSE, None, reason="fatigued")
    assert pending is not None and pending.status == ChangeStatus.PENDING_APPROVAL
    result = approvals.execute_approved_changes(limit=1000)
    assert pending.id not in result["change_ids"]
    assert approvals.show_change(pending.id).status == ChangeStatus.PENDING_APPROVAL
    assert ad_row(ad_id).status == "active" and calls_for(pending.id) == []


def test_approved_change_is_executed_through_the_recording_client(make_campaign: MakeCampaign) -> None:
    (ad_id,) = make_campaign(1, budget=80.0)
    change_id = propose_and_approve(ad_id, ChangeType.BUDGET, 90.0)
    result = approvals.execute_approved_changes(limit=1000)
    assert change_id in result["change_ids"]
    view = approvals.show_change(change_id)
    assert view.status == ChangeStatus.EXECUTED and view.executed_at is not None
    assert view.result and view.result["previous"]["daily_budget"] == 80.0
    assert ad_row(ad_id).daily_budget == 90.0
    (call,) = calls_for(change_id)
    assert call.operation == "set_budget" and call.params == {"daily_budget": 90.0}
    # executed once: a second run finds nothing left to do for it
    assert change_id not in approvals.execute_approved_changes(limit=1000)["change_ids"]
    assert len(calls_for(change_id)) == 1


def test_decisions_follow_the_state_machine(make_campaign: MakeCampaign) -> None:
    a, b, c = make_campaign(3)
    first = approvals.propose_change(a, ChangeType.PAUSE, None, reason="x")
    assert first is not None
    assert approvals.propose_change(a, ChangeType.BUDGET, 50, reason="y") is None, "one open proposal per ad"
    approved = approvals.approve_change(first.id, "alice", "looks right")
    assert (approved.status, approved.decided_by, approved.decision_note) == ("approved", "alice", "looks right")
    with pytest.raises(approvals.InvalidTransition, match="is approved"):
        approvals.reject_change(first.id, "bob")
    second = approvals.propose_change(b, ChangeType.RESUME, None, reason="z")
    assert second is not None
    assert approvals.reject_change(second.id, "bob", "not now").status == ChangeStatus.REJECTED
    assert approvals.propose_change(b, ChangeType.PAUSE, None, reason="again") is not None, "closed ones free the ad"
    with pytest.raises(approvals.ChangeNotFound):
        approvals.approve_change(10**9, "alice")
    with pytest.raises(InvalidPayload, match="decided_by"):
        approvals.approve_change(second.id, "  ")
    with pytest.raises(InvalidPayload, match="requested_value"):
        approvals.propose_change(c, ChangeType.BUDGET, None, reason="no amount")
    listed = approvals.list_changes(None, ad_id=b)
    assert [v.status for v in listed] == ["pending_approval", "rejected"]


def test_an_expired_proposal_cannot_be_approved(make_campaign: MakeCampaign) -> None:
    (ad_id,) = make_campaign(1)
    view = approvals.propose_change(ad_id, ChangeType.PAUSE, None, reason="old")
    assert view is not None
    with session_scope() as session:
        session.execute(update(PendingAdChange).where(PendingAdChange.id == view.id)
                        .values(expires_at=utcnow() - timedelta(minutes=1)))
    with pytest.raises(approvals.InvalidTransition, match="expired"):
        approvals.approve_change(view.id, "alice")
    assert approvals.show_change(view.id).status == ChangeStatus.EXPIRED


def test_the_16th_change_in_an_hour_is_blocked(make_campaign: MakeCampaign) -> None:
    ads = make_campaign(16)
    ids = [propose_and_approve(ad_id, ChangeType.PAUSE) for ad_id in ads]
    approvals.execute_approved_changes(limit=1000)
    views = [approvals.show_change(i) for i in ids]
    assert [v.status for v in views].count("executed") == 15
    (blocked,) = [v for v in views if v.status == "blocked"]
    assert blocked.error and "15 changes executed in the last hour" in blocked.error
    assert ad_row(blocked.ad_id).status == "active" and calls_for(blocked.id) == []


def test_budget_moves_beyond_20_percent_in_6_hours_are_blocked(make_campaign: MakeCampaign) -> None:
    a, b, c, d = make_campaign(4, budget=100.0)  # the campaign spends $400 a day
    too_big = propose_and_approve(a, ChangeType.BUDGET, 200.0)  # +$100 = 25 %
    approvals.execute_approved_changes(limit=1000)
    blocked = approvals.show_change(too_big)
    assert blocked.status == "blocked" and blocked.error and "25.0%" in blocked.error
    assert ad_row(a).daily_budget == 100.0
    small = propose_and_approve(b, ChangeType.BUDGET, 140.0)  # +$40 = 10 %
    approvals.execute_approved_changes(limit=1000)
    assert approvals.show_change(small).status == "executed"
    cumulative = propose_and_approve(c, ChangeType.BUDGET, 40.0)  # -$60: 10 % + 15 % = 25 % moved in 6 h
    approvals.execute_approved_changes(limit=1000)
    assert approvals.show_change(cumulative).status == "blocked"
    fits = propose_and_approve(d, ChangeType.BUDGET, 70.0)  # -$30: 17.5 % in all
    approvals.execute_approved_changes(limit=1000)
    assert approvals.show_change(fits).status == "executed"


class _RefusingClient(RecordingAdPlatformClient):
    name = "refusing"

    def pause_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        raise AdPlatformRejected(f"ad {ad.ad_id} is in review and cannot be paused")


class _FlakyClient(RecordingAdPlatformClient):
    name = "flaky"

    def pause_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        raise DependencyUnavailable("platform API timed out")


def test_platform_refusals_fail_and_timeouts_are_retried_then_fail(make_campaign: MakeCampaign) -> None:
    refused_ad, flaky_ad = make_campaign(2)
    refused = propose_and_approve(refused_ad, ChangeType.PAUSE)
    approvals.execute_approved_changes(limit=1000, client_factory=_RefusingClient)
    view = approvals.show_change(refused)
    assert view.status == "failed" and view.error and "in review" in view.error
    flaky = propose_and_approve(flaky_ad, ChangeType.PAUSE)
    statuses = []
    for _ in range(approvals.MAX_ATTEMPTS):
        approvals.execute_approved_changes(limit=1000, client_factory=_FlakyClient)
        statuses.append(approvals.show_change(flaky).status)
    assert statuses == ["approved"] * (approvals.MAX_ATTEMPTS - 1) + ["failed"]
    assert ad_row(flaky_ad).status == "active" and calls_for(flaky) == []


def test_a_change_left_executing_by_a_lost_worker_is_failed_not_rerun(make_campaign: MakeCampaign) -> None:
    (ad_id,) = make_campaign(1)
    change_id = propose_and_approve(ad_id, ChangeType.PAUSE)
    with session_scope() as session:
        session.execute(update(PendingAdChange).where(PendingAdChange.id == change_id).values(
            status="executing", claimed_by="lost-worker", claimed_at=utcnow() - timedelta(hours=1)))
    result = approvals.execute_approved_changes(limit=1000)
    assert result["interrupted"] >= 1 and change_id not in result["change_ids"]
    view = approvals.show_change(change_id)
    assert view.status == "failed" and view.error and "worker lost" in view.error
    assert calls_for(change_id) == []


def test_two_concurrent_claimers_never_share_a_row(make_campaign: MakeCampaign) -> None:
    ads = make_campaign(12)
    ids = {propose_and_approve(ad_id, ChangeType.RESUME) for ad_id in ads}
    claimed: list[list[int]] = []
    barrier = threading.Barrier(2)

    def claim(owner: str) -> None:
        barrier.wait()
        with session_scope() as session:
            claimed.append(approvals.claim_approved(session, 1000, owner, utcnow()))

    threads = [threading.Thread(target=claim, args=(f"claimer-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    mine = [sorted(set(c) & ids) for c in claimed]
    assert len(claimed) == 2 and not set(mine[0]) & set(mine[1])
    assert set(mine[0]) | set(mine[1]) == ids
