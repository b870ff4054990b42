"""The gate preview of the approvals page agrees with the executor's own check (``approvals.gate_violation``).

Given a migrated SQLite with campaigns whose hourly count and budget window are partly or fully used, when
the page's preview and the executor's check judge every pending change, then they give the same verdicts.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from geminivideo.api.console.gates import ad_budgets, campaign_gates, decision_block
from geminivideo.api.console.sample_data import fill_hourly_gate, seed_campaign
from geminivideo.contracts import utcnow
from geminivideo.db.migrate import upgrade
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import ChangeSource, ChangeStatus, ChangeType, PendingAdChange
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals
from tests.support.env import applied


def _budget_change(ad: str, campaign: str, to: float, status: ChangeStatus, **extra: object) -> PendingAdChange:
    now = utcnow()
    return PendingAdChange(tenant_id="t", ad_id=ad, campaign_id=campaign, change_type=ChangeType.BUDGET.value,
                           current_value=100.0, requested_value=to, reason="test", source=ChangeSource.MANUAL.value,
                           evidence={}, status=status.value, created_at=now, updated_at=now, attempts=0, **extra)


def test_preview_and_executor_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gates.db'}"
    upgrade(url)
    day = date(2026, 11, 30)
    with applied({"DATABASE_URL": url}):
        with session_scope() as session:
            seed_campaign(session, "t", "free", 2, as_of=day)
            seed_campaign(session, "t", "busy", 1, as_of=day)
            fill_hourly_gate(session, "t", "busy")
            small, large = seed_campaign(session, "t", "moved", 2, as_of=day)  # campaign budget $200
            done = seed_campaign(session, "t", "moved-done", 1, as_of=day, prefix="moved-x")[0]
            session.get(Ad, done).campaign_id = "moved"  # type: ignore[union-attr]  # now $300 in all
            session.add(_budget_change(done, "moved", 130.0, ChangeStatus.EXECUTED, executed_at=utcnow() - timedelta(
                hours=1), result={"previous": {"daily_budget": 100.0}, "applied": {"daily_budget": 130.0}}))
            session.add_all([
                _budget_change("free-ad-0000", "free", 90.0, ChangeStatus.PENDING_APPROVAL),
                _budget_change("free-ad-0001", "free", 150.0, ChangeStatus.PENDING_APPROVAL),
                _budget_change("busy-ad-0000", "busy", 95.0, ChangeStatus.PENDING_APPROVAL),
                _budget_change(small, "moved", 110.0, ChangeStatus.PENDING_APPROVAL),
                _budget_change(large, "moved", 160.0, ChangeStatus.PENDING_APPROVAL),
            ])
        with session_scope() as session:
            rows = session.scalars(select(PendingAdChange).where(
                PendingAdChange.status == ChangeStatus.PENDING_APPROVAL)).all()
            views = [approvals.ChangeView.model_validate(r) for r in rows]
            gates = campaign_gates(session, (v.campaign_id for v in views))
            budgets = ad_budgets(session, (v.ad_id for v in views))
            preview = {v.ad_id: gates[v.campaign_id].would_block(v, budgets[v.ad_id]) for v in views}
            executor = {v.ad_id: decision_block(session, v.id) for v in views}
    assert preview == executor
    assert preview["free-ad-0000"] is None  # 10 % of $200
    assert "would reach 25.0%" in str(preview["free-ad-0001"])
    assert "15 changes executed in the last hour" in str(preview["busy-ad-0000"])
    assert preview[small] is None  # $30 moved + $10 = 14.8 % of the $270 the window opened with
    assert "budget movement in campaign moved" in str(preview[large])


def test_decisions_need_the_decide_scope_and_the_identity_s_tenant(tmp_path: Path) -> None:
    from geminivideo.api.console.approvals import decide
    from geminivideo.api.console.identity import Identity

    url = f"sqlite:///{tmp_path / 'scopes.db'}"
    upgrade(url)
    with applied({"DATABASE_URL": url}):
        with session_scope() as session:
            ad = seed_campaign(session, "acme", "spring", 1, as_of=date(2026, 11, 30))[0]
        proposal = approvals.propose_change(ad, "pause", None, reason="test")
        assert proposal is not None
        reader = Identity("reader", scopes=("approvals:read",))
        other = Identity("globex-ops", scopes=("approvals:decide",), tenant_id="globex")
        own = Identity("acme-ops", scopes=("approvals:decide",), tenant_id="acme")

        kind, text = decide(proposal.id, "approve", reader, None)
        assert kind == "error" and "lacks the approvals:decide scope" in text
        kind, text = decide(proposal.id, "reject", other, None)
        assert kind == "error" and "no pending ad change" in text  # another tenant's change does not exist for it
        assert approvals.show_change(proposal.id).status == "pending_approval"

        kind, text = decide(proposal.id, "reject", own, "not now")
        assert kind == "ok" and "rejected by acme-ops" in text
        assert approvals.show_change(proposal.id).decided_by == "acme-ops"
