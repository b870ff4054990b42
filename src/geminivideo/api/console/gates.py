"""The approval queue's safety gates as the console shows them, before a decision is made.

``campaign_gates`` reads, for many campaigns in three grouped queries, what ``approvals.gate_violation``
reads for one change: changes executed in the last hour and budget moved in the gate's window. The list page
uses it to say which proposals the gates would block; the approve action itself asks
``approvals.gate_violation`` (the executor's own check) and refuses a change it would block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geminivideo.contracts import utcnow
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import ChangeStatus, ChangeType, PendingAdChange

# _budget_delta: the executor's own reading of an executed change's result, so both count the same movement.
from geminivideo.ml.decisions.approvals import ChangeView, SafetyGates, _budget_delta, gate_violation


@dataclass
class CampaignGates:
    """One campaign's use of the gates right now."""

    campaign_id: str
    changes_last_hour: int = 0
    budget_deltas: list[float] = field(default_factory=list)
    budget_now: float = 0.0
    gates: SafetyGates = field(default_factory=SafetyGates)

    @property
    def moved(self) -> float:
        return sum(abs(d) for d in self.budget_deltas)

    @property
    def window_base(self) -> float:
        """The campaign's daily budget when the window opened (today's minus what moved since)."""
        return self.budget_now - sum(self.budget_deltas)

    @property
    def moved_share(self) -> float:
        return self.moved / self.window_base if self.window_base > 0 else 0.0

    @property
    def window_hours(self) -> float:
        return self.gates.budget_window.total_seconds() / 3600

    @cached_property
    def summary(self) -> tuple[str, str]:
        """("3 of 15", "4.0 % of 20 % in the last 6 h"): the hourly count and the budget window, as shown."""
        return (f"{self.changes_last_hour} of {self.gates.max_changes_per_hour}",
                f"{self.moved_share * 100:.1f} % of {self.gates.max_budget_move:.0%} in the last "
                f"{self.window_hours:g} h")

    def would_block(self, change: ChangeView, ad_budget: float | None) -> str | None:
        """Why approving ``change`` now would be blocked (the same rules as ``gate_violation``), or None."""
        limit = self.gates.max_changes_per_hour
        if self.changes_last_hour >= limit:
            return (f"campaign {self.campaign_id} already had {self.changes_last_hour} changes executed in the last "
                    f"hour (limit {limit}); propose again later")
        if change.change_type != ChangeType.BUDGET or ad_budget is None:
            return None
        this_move = abs(float(change.requested_value or 0.0) - ad_budget)
        if this_move == 0:
            return None
        base = self.window_base
        share = (self.moved + this_move) / base if base > 0 else float("inf")
        if share > self.gates.max_budget_move + 1e-9:
            return (f"budget movement in campaign {self.campaign_id} would reach {share:.1%} of its ${base:,.2f} "
                    f"daily budget within {self.window_hours:g} h (limit {self.gates.max_budget_move:.0%}): "
                    f"${self.moved + this_move:,.2f} moved")
        return None


def campaign_gates(session: Session, campaign_ids: Iterable[str], now: datetime | None = None,
                   gates: SafetyGates | None = None) -> dict[str, CampaignGates]:
    """Gate state of every campaign in ``campaign_ids``."""
    ids = sorted(set(campaign_ids))
    gates = gates or SafetyGates()
    now = now or utcnow()
    found = {c: CampaignGates(c, gates=gates) for c in ids}
    if not ids:
        return found
    executed = (PendingAdChange.campaign_id.in_(ids), PendingAdChange.status == ChangeStatus.EXECUTED)
    counts = session.execute(select(PendingAdChange.campaign_id, func.count()).where(
        *executed, PendingAdChange.executed_at > now - timedelta(hours=1)).group_by(PendingAdChange.campaign_id))
    for campaign, count in counts:
        found[campaign].changes_last_hour = int(count)
    moves = session.execute(select(PendingAdChange.campaign_id, PendingAdChange.result).where(
        *executed, PendingAdChange.change_type == ChangeType.BUDGET,
        PendingAdChange.executed_at > now - gates.budget_window))
    for campaign, result in moves:
        found[campaign].budget_deltas.append(_budget_delta(result))
    budgets = session.execute(select(Ad.campaign_id, func.coalesce(func.sum(Ad.daily_budget), 0.0)).where(
        Ad.campaign_id.in_(ids), Ad.status != "archived").group_by(Ad.campaign_id))
    for campaign, total in budgets:
        found[campaign].budget_now = float(total or 0.0)
    return found


def ad_budgets(session: Session, ad_ids: Iterable[str]) -> dict[str, float]:
    ids = sorted(set(ad_ids))
    if not ids:
        return {}
    rows = session.execute(select(Ad.id, Ad.daily_budget).where(Ad.id.in_(ids)))
    return {ad: float(budget or 0.0) for ad, budget in rows}


def decision_block(session: Session, change_id: int, gates: SafetyGates | None = None) -> str | None:
    """The executor's own gate check for one change, as if it ran now; None when it would pass."""
    change = session.get(PendingAdChange, change_id)
    if change is None:
        return None
    ad = session.get(Ad, change.ad_id)
    if ad is None:
        return f"ad {change.ad_id} no longer exists"
    return gate_violation(session, change, ad, gates or SafetyGates(), utcnow())
