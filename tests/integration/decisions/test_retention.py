"""What the periodic sweeps remove, on SQLite and PostgreSQL: fatigue scans past their retention (their reports
by cascade) and proposals nobody decided before they expired. Anything younger, or decided, stays."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select, update

from geminivideo.contracts import utcnow
from geminivideo.db.models.decisions import ChangeStatus, ChangeType, FatigueReport, FatigueScan, PendingAdChange
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals, fatigue
from tests.integration.decisions.conftest import MakeCampaign


def _scan(tenant: str, age_days: float, reports: int) -> int:
    started = utcnow() - timedelta(days=age_days)
    with session_scope() as session:
        scan = FatigueScan(tenant_id=tenant, as_of=date.today(), status="completed", started_at=started,
                           finished_at=started)
        session.add(scan)
        session.flush()
        session.add_all(FatigueReport(scan_id=scan.id, tenant_id=tenant, ad_id=f"ad-{i}", campaign_id="c",
                                      status="HEALTHY", severity="ok", created_at=started) for i in range(reports))
        return scan.id


def _reports_of(scan_id: int) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).where(FatigueReport.scan_id == scan_id)) or 0)


def _scan_exists(scan_id: int) -> bool:
    with session_scope() as session:
        return session.get(FatigueScan, scan_id) is not None


def test_prune_reports_drops_old_scans_and_their_reports_only(tenant: str) -> None:
    old, edge, young = _scan(tenant, 40, 3), _scan(tenant, 29.9, 2), _scan(tenant, 1, 2)

    pruned = fatigue.prune_reports(retention_days=30)

    assert pruned >= 1  # the shared database may hold other tests' old scans too; never a young one
    assert not _scan_exists(old) and _reports_of(old) == 0, "the reports must go with their scan (cascade)"
    assert _scan_exists(edge) and _reports_of(edge) == 2
    assert _scan_exists(young) and _reports_of(young) == 2


def test_expire_stale_changes_expires_only_undecided_proposals_past_their_expiry(
    make_campaign: MakeCampaign,
) -> None:
    stale_ad, fresh_ad, decided_ad = make_campaign(3)
    views = [approvals.propose_change(ad, ChangeType.PAUSE, None, reason="fatigued")
             for ad in (stale_ad, fresh_ad, decided_ad)]
    assert all(v is not None for v in views)
    stale, fresh, decided = (v.id for v in views if v is not None)
    approvals.approve_change(decided, "ops@example.com")
    with session_scope() as session:
        session.execute(update(PendingAdChange).where(PendingAdChange.id.in_([stale, decided]))
                        .values(expires_at=utcnow() - timedelta(minutes=1)))

    expired = approvals.expire_stale_changes()

    assert expired >= 1
    assert approvals.show_change(stale).status == ChangeStatus.EXPIRED
    assert approvals.show_change(fresh).status == ChangeStatus.PENDING_APPROVAL
    assert approvals.show_change(decided).status == ChangeStatus.APPROVED  # a decision is never expired
