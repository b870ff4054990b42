"""BattleHardenedSampler: Thompson sampling over ads with real posteriors, budget allocation, kill/scale calls.

- CTR: Beta(prior + clicks, prior + non-clicks) with an account-level prior (pooled CTR of the ads compared,
  worth ``prior_impressions`` impressions).
- Value per dollar: Gamma-Poisson conjugate on credited value (in units of the account's value per
  conversion) over spend, with an account-level prior worth ``prior_value_units`` units. ``pipeline`` mode
  uses credited pipeline value, ``direct`` mode cash revenue.
- Each draw blends CTR and ROAS, both normalised by their account means, by the ad's age: CTR weight 1.0
  under 6 h, 0.7 at 24 h, 0.3 at 72 h, then decaying toward 0. Ads the fatigue monitor flagged are down-weighted.
- Allocation: shares proportional to the probability of being best (Monte Carlo, seeded), an exploration
  floor per ad, each change capped relative to the ad's current share, the total conserved to the cent.
- Decisions: never kill inside the ignorance zone (< 2 days and < $100) nor under $200 spend; kill below
  ROAS 0.5, scale above 3.0 (with >= $200 spend), else maintain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geminivideo.db.models import Ad, AdDailyMetric, AdSamplerState
from geminivideo.db.models.decisions import ChangeSource, ChangeType, Severity
from geminivideo.errors import InvalidPayload

DEFAULT_CTR = 0.014  # public median CTR, used when the compared ads have no impressions at all
DEFAULT_VALUE_PER_CONVERSION = 100.0


class SamplerMode(StrEnum):
    PIPELINE = "pipeline"
    DIRECT = "direct"


class Decision(StrEnum):
    KILL = "kill"
    SCALE = "scale"
    MAINTAIN = "maintain"


class AdState(BaseModel):
    """What the sampler knows about one ad (from the database, or given explicitly to the API)."""

    model_config = ConfigDict(extra="forbid")

    ad_id: str = Field(min_length=1, max_length=128)
    impressions: int = Field(0, ge=0)
    clicks: int = Field(0, ge=0)
    spend: float = Field(0.0, ge=0)
    pipeline_value: float = Field(0.0, ge=0)
    cash_revenue: float = Field(0.0, ge=0)
    conversions: int = Field(0, ge=0)
    age_hours: float = Field(0.0, ge=0)
    current_budget: float = Field(0.0, ge=0)
    fatigue_severity: Severity | None = None
    fatigue_status: str | None = None
    tenant_id: str | None = None
    campaign_id: str | None = None

    @model_validator(mode="after")
    def _clicks_within_impressions(self) -> AdState:
        if self.clicks > self.impressions:
            raise ValueError(f"clicks ({self.clicks}) cannot exceed impressions ({self.impressions})")
        return self

    def value(self, mode: SamplerMode) -> float:
        return self.pipeline_value if mode is SamplerMode.PIPELINE else self.cash_revenue


@dataclass(frozen=True)
class SamplerConfig:
    mode: SamplerMode = SamplerMode.PIPELINE
    n_draws: int = 2000
    seed: int | None = None
    exploration_floor: float = 0.05
    max_floor_mass: float = 0.5  # the floors of all ads together take at most half the budget
    max_change: float = 0.5
    prior_impressions: float = 1000.0
    prior_value_units: float = 2.0
    fatigue_factor: dict[str, float] = field(
        default_factory=lambda: {Severity.CRITICAL.value: 0.5, Severity.WARNING.value: 0.8})
    kill_roas: float = 0.5
    scale_roas: float = 3.0
    min_decision_spend: float = 200.0
    ignorance_days: float = 2.0
    ignorance_spend: float = 100.0

    def __post_init__(self) -> None:
        problems = []
        if not 1000 <= self.n_draws <= 100_000:
            problems.append(f"n_draws must be 1000..100000, got {self.n_draws}")
        if not 0 <= self.exploration_floor < 1:
            problems.append(f"exploration_floor must be in [0, 1), got {self.exploration_floor}")
        if not 0 < self.max_change <= 10:
            problems.append(f"max_change must be in (0, 10], got {self.max_change}")
        if problems:
            raise InvalidPayload("sampler config: " + "; ".join(problems))


def ctr_weight(age_hours: np.ndarray) -> np.ndarray:
    """Weight of CTR in the blend: 1.0 under 6 h, 0.7 at 24 h, 0.3 at 72 h, then halving every ~50 h."""
    age = np.asarray(age_hours, dtype=float)
    early = np.interp(age, [0.0, 6.0, 24.0, 72.0], [1.0, 1.0, 0.7, 0.3])
    return np.where(age <= 72.0, early, 0.3 * np.exp(-(age - 72.0) / 72.0))


@dataclass
class Posteriors:
    ctr_a: np.ndarray
    ctr_b: np.ndarray
    value_shape: np.ndarray
    value_rate: np.ndarray
    value_unit: float
    account_ctr: float
    account_roas: float
    weight: np.ndarray
    fatigue: np.ndarray

    @property
    def ctr_mean(self) -> np.ndarray:
        return self.ctr_a / (self.ctr_a + self.ctr_b)

    @property
    def roas_mean(self) -> np.ndarray:
        return self.value_unit * self.value_shape / self.value_rate


class BattleHardenedSampler:
    """Posterior sampling and budget allocation over a set of ads; pure (no database)."""

    def __init__(self, config: SamplerConfig | None = None) -> None:
        self.config = config or SamplerConfig()

    def posteriors(self, states: Sequence[AdState]) -> Posteriors:
        cfg = self.config
        imps = np.array([s.impressions for s in states], dtype=float)
        clicks = np.array([s.clicks for s in states], dtype=float)
        spend = np.array([s.spend for s in states], dtype=float)
        value = np.array([s.value(cfg.mode) for s in states], dtype=float)
        conversions = sum(s.conversions for s in states)
        account_ctr = float((clicks.sum() + 1) / (imps.sum() + 2)) if imps.sum() > 0 else DEFAULT_CTR
        unit = float(value.sum() / conversions) if conversions and value.sum() > 0 else DEFAULT_VALUE_PER_CONVERSION
        account_roas = float(value.sum() / spend.sum()) if spend.sum() > 0 and value.sum() > 0 else 1.0
        shape0 = cfg.prior_value_units
        rate0 = shape0 * unit / account_roas  # prior mean of value units per dollar = account ROAS / unit
        fatigue = np.array([cfg.fatigue_factor.get(str(s.fatigue_severity), 1.0) if s.fatigue_severity else 1.0
                            for s in states])
        return Posteriors(
            ctr_a=account_ctr * cfg.prior_impressions + clicks,
            ctr_b=(1 - account_ctr) * cfg.prior_impressions + (imps - clicks),
            value_shape=shape0 + value / unit, value_rate=rate0 + spend, value_unit=unit,
            account_ctr=account_ctr, account_roas=account_roas,
            weight=ctr_weight(np.array([s.age_hours for s in states])), fatigue=fatigue,
        )

    def draw_scores(self, post: Posteriors, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """(n_draws, n_ads) blended, normalised, fatigue-weighted scores."""
        n = len(post.weight)
        ctr = rng.beta(post.ctr_a, post.ctr_b, size=(n_draws, n))
        roas = post.value_unit * rng.gamma(post.value_shape, 1.0 / post.value_rate, size=(n_draws, n))
        blended = post.weight * (ctr / post.account_ctr) + (1 - post.weight) * (roas / post.account_roas)
        return blended * post.fatigue

    def probability_best(self, states: Sequence[AdState]) -> tuple[np.ndarray, Posteriors]:
        if not states:
            raise InvalidPayload("ads: give at least one ad")
        post = self.posteriors(states)
        rng = np.random.default_rng(self.config.seed)
        scores = self.draw_scores(post, self.config.n_draws, rng)
        wins = np.bincount(scores.argmax(axis=1), minlength=len(states))
        return wins / self.config.n_draws, post

    def select(self, states: Sequence[AdState]) -> dict[str, Any]:
        """One Thompson draw picks the ad to serve next; the Monte Carlo P(best) ranks them all."""
        p_best, post = self.probability_best(states)
        rng = np.random.default_rng(None if self.config.seed is None else self.config.seed + 1)
        draw = self.draw_scores(post, 1, rng)[0]
        chosen = int(draw.argmax())
        ranking = [
            {"ad_id": s.ad_id, "probability_best": round(float(p_best[i]), 4), "draw": round(float(draw[i]), 6),
             "metrics": _metrics(s, post, i, self.config.mode)}
            for i, s in enumerate(states)
        ]
        ranking.sort(key=lambda r: float(r["probability_best"]), reverse=True)  # type: ignore[arg-type]
        return {"selected_ad_id": states[chosen].ad_id, "mode": self.config.mode.value, "ads": ranking}

    def allocate(self, states: Sequence[AdState], total_budget: float) -> dict[str, Any]:
        """Budget per ad: P(best) shares, floor, capped changes, total conserved; plus kill/scale/maintain."""
        if not total_budget >= 0:
            raise InvalidPayload(f"total_budget must be >= 0, got {total_budget}")
        p_best, post = self.probability_best(states)
        current = np.array([s.current_budget for s in states], dtype=float)
        plan = allocate_budget(p_best, current, total_budget, floor=self.config.exploration_floor,
                               max_change=self.config.max_change, max_floor_mass=self.config.max_floor_mass)
        recs = [self._recommendation(s, i, post, p_best, plan) for i, s in enumerate(states)]
        return {"total_budget": round(total_budget, 2), "allocated": round(float(plan.budgets.sum()), 2),
                "mode": self.config.mode.value, "n_draws": self.config.n_draws, "seed": self.config.seed,
                "floor_share": round(plan.floor_share, 6), "caps_relaxed": plan.caps_relaxed, "recommendations": recs}

    def _recommendation(self, s: AdState, i: int, post: Posteriors, p_best: np.ndarray, plan: Plan) -> dict[str, Any]:
        decision, reasons = decide(s, self.config)
        budget = float(plan.budgets[i])
        change = (budget / s.current_budget - 1) if s.current_budget > 0 else None
        share_change = (budget / plan.base[i] - 1) if plan.base[i] > 0 else None
        reasons = [f"P(best)={p_best[i]:.3f} of {self.config.n_draws} draws", *plan.notes[i], *reasons]
        return {"ad_id": s.ad_id, "current_budget": round(s.current_budget, 2), "recommended_budget": round(budget, 2),
                "change_pct": None if change is None else round(100 * change, 2),
                "share_change_pct": None if share_change is None else round(100 * share_change, 2),
                "probability_best": round(float(p_best[i]), 4), "decision": decision.value, "reasons": reasons,
                "metrics": _metrics(s, post, i, self.config.mode)}


def _metrics(s: AdState, post: Posteriors, i: int, mode: SamplerMode) -> dict[str, Any]:
    value = s.value(mode)
    return {
        "impressions": s.impressions, "clicks": s.clicks, "spend": round(s.spend, 2),
        "ctr": round(s.clicks / s.impressions, 6) if s.impressions else None,
        "ctr_posterior_mean": round(float(post.ctr_mean[i]), 6), "value": round(value, 2),
        "roas": round(value / s.spend, 4) if s.spend > 0 else None,
        "roas_posterior_mean": round(float(post.roas_mean[i]), 4), "age_hours": round(s.age_hours, 1),
        "ctr_weight": round(float(post.weight[i]), 3), "fatigue_status": s.fatigue_status,
        "fatigue_factor": float(post.fatigue[i]),
    }


def decide(s: AdState, cfg: SamplerConfig) -> tuple[Decision, list[str]]:
    """Kill / scale / maintain from ROAS with the seed's guards (ignorance zone, minimum spend)."""
    value = s.value(cfg.mode)
    roas = value / s.spend if s.spend > 0 else None
    days = s.age_hours / 24
    label = "pipeline ROAS" if cfg.mode is SamplerMode.PIPELINE else "cash ROAS"
    if days < cfg.ignorance_days and s.spend < cfg.ignorance_spend:
        return Decision.MAINTAIN, [f"ignorance zone: {days:.1f} days live and ${s.spend:,.2f} spent (never kill under "
                                   f"{cfg.ignorance_days:g} days and ${cfg.ignorance_spend:,.0f})"]
    if s.spend < cfg.min_decision_spend or roas is None:
        return Decision.MAINTAIN, [f"${s.spend:,.2f} spent: under ${cfg.min_decision_spend:,.0f} no kill or scale"]
    if roas < cfg.kill_roas:
        return Decision.KILL, [f"{label} {roas:.2f} < {cfg.kill_roas:g} after ${s.spend:,.2f}"]
    if roas > cfg.scale_roas:
        return Decision.SCALE, [f"{label} {roas:.2f} > {cfg.scale_roas:g} after ${s.spend:,.2f}"]
    return Decision.MAINTAIN, [f"{label} {roas:.2f} between {cfg.kill_roas:g} and {cfg.scale_roas:g}"]


# ─── Allocation (pure) ──────────────────────────────────────────────────────────────────────────────
@dataclass
class Plan:
    budgets: np.ndarray
    base: np.ndarray  # current budgets rescaled to the new total: what the change caps apply to
    floor_share: float
    caps_relaxed: bool
    notes: list[list[str]]


def allocate_budget(
    target_shares: np.ndarray, current: np.ndarray, total: float, *, floor: float = 0.05, max_change: float = 0.5,
    max_floor_mass: float = 0.5,
) -> Plan:
    """Budgets close to ``target_shares * total`` within [floor, current share +/- max_change], summing to total.

    Caps apply to each ad's current budget rescaled to the new total (so a larger total is spread, not refused);
    an ad without a current budget is only held to the floor. Amounts are exact cents.
    """
    n = len(target_shares)
    cents = round(total * 100)
    floor_share = min(floor, max_floor_mass / n) if n else 0.0
    f = floor_share * total
    base = current * (total / current.sum()) if current.sum() > 0 else np.zeros(n)
    has_base = base > 0
    lo = np.where(has_base, np.maximum(f, (1 - max_change) * base), f)
    hi = np.where(has_base, np.maximum(f, (1 + max_change) * base), total)
    relaxed = bool(lo.sum() > total + 1e-9)
    if relaxed:  # floors and cuts cannot all hold: the floors stay, the cuts above them shrink alike
        excess = lo - f
        lo = f + excess * ((total - n * f) / excess.sum())
    shares = np.asarray(target_shares, dtype=float)
    target = np.where(shares > 1e-9, shares, 0.0) * total  # drop vanishing shares: they only overflow lam
    budgets = _fit_total(target, lo, hi, total)
    exact = _to_cents(budgets, cents)
    notes = [_notes(exact[i], target[i], lo[i], hi[i], f, has_base[i]) for i in range(n)]
    return Plan(budgets=exact, base=base, floor_share=floor_share, caps_relaxed=relaxed, notes=notes)


def _fit_total(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """clip(lam * target, lo, hi) with lam found by bisection so the sum is ``total``; leftovers by headroom."""
    if total <= 0:
        return np.zeros_like(target)
    positive = target > 0
    lam_hi = float(np.max(hi[positive] / target[positive])) if positive.any() else 0.0
    lam_lo = 0.0
    for _ in range(100):
        lam = (lam_lo + lam_hi) / 2
        if np.clip(lam * target, lo, hi).sum() < total:
            lam_lo = lam
        else:
            lam_hi = lam
    budgets = np.clip(lam_hi * target, lo, hi)
    gap = total - budgets.sum()
    room = (hi - budgets) if gap > 0 else (budgets - lo)
    if abs(gap) > 1e-9 and room.sum() > 0:
        budgets = budgets + np.sign(gap) * room * min(1.0, abs(gap) / room.sum())
    return budgets


def _to_cents(budgets: np.ndarray, total_cents: int) -> np.ndarray:
    raw = np.maximum(budgets, 0) * 100
    whole = np.floor(raw + 1e-6).astype(np.int64)  # 34695.9999999 is 34696 cents, not 34695
    short = total_cents - int(whole.sum())
    if short > 0:
        whole[np.argsort(raw - whole)[::-1][:short]] += 1
    elif short < 0:
        whole[np.argsort(raw - whole)[: -short]] -= 1
    return whole / 100.0


def _notes(budget: float, target: float, lo: float, hi: float, floor: float, has_base: bool) -> list[str]:
    if budget <= floor + 0.01 and target < floor:
        return [f"exploration floor ${floor:,.2f}"]
    if has_base and budget >= hi - 0.01 and target > hi:
        return ["capped at the maximum increase"]
    if has_base and budget <= lo + 0.01 and target < lo:
        return ["capped at the maximum decrease"]
    return []


# ─── Database ───────────────────────────────────────────────────────────────────────────────────────
def load_states(session: Session, *, ad_ids: Sequence[str] | None = None, tenant_id: str | None = None,
                now: datetime | None = None) -> list[AdState]:
    """States of the given ads (or all active ads of a tenant) from metrics, sampler state and fatigue reports."""
    from geminivideo.ml.decisions.fatigue import latest_verdicts

    now = now or datetime.now(UTC)
    stmt = select(Ad)
    if ad_ids is not None:
        stmt = stmt.where(Ad.id.in_(list(ad_ids)))
    elif tenant_id:
        stmt = stmt.where(Ad.tenant_id == tenant_id, Ad.status == "active")
    else:
        raise InvalidPayload("give ad_ids or tenant_id (or explicit ads)")
    ads = {a.id: a for a in session.scalars(stmt)}
    missing = [a for a in (ad_ids or []) if a not in ads]
    if missing:
        raise InvalidPayload(f"ad_ids: unknown ad(s) {', '.join(missing[:10])}")
    ids = list(ad_ids) if ad_ids is not None else sorted(ads)
    totals = {r[0]: r[1:] for r in session.execute(
        select(AdDailyMetric.ad_id, func.sum(AdDailyMetric.impressions), func.sum(AdDailyMetric.clicks),
               func.sum(AdDailyMetric.spend)).where(AdDailyMetric.ad_id.in_(ids)).group_by(AdDailyMetric.ad_id))}
    outcomes = {s.ad_id: s for s in session.scalars(select(AdSamplerState).where(AdSamplerState.ad_id.in_(ids)))}
    verdicts = latest_verdicts(session, ids)
    return [_state(ads[i], totals.get(i), outcomes.get(i), verdicts.get(i), now) for i in ids]


def _state(ad: Ad, totals: Any, outcome: AdSamplerState | None, verdict: tuple[str, str] | None,
           now: datetime) -> AdState:
    imps, clicks, spend = totals if totals else (0, 0, 0.0)
    return AdState(
        ad_id=ad.id, impressions=int(imps or 0), clicks=int(clicks or 0), spend=float(spend or 0.0),
        pipeline_value=max(0.0, outcome.pipeline_value) if outcome else 0.0,
        cash_revenue=max(0.0, outcome.cash_revenue) if outcome else 0.0,
        conversions=outcome.conversions if outcome else 0,
        age_hours=max(0.0, (now - ad.launched_at).total_seconds() / 3600), current_budget=ad.daily_budget,
        fatigue_status=verdict[0] if verdict else None,
        fatigue_severity=Severity(verdict[1]) if verdict and verdict[1] != Severity.OK else None,
        tenant_id=ad.tenant_id, campaign_id=ad.campaign_id,
    )


def submit_for_approval(session: Session, allocation: dict[str, Any], states: Sequence[AdState], *,
                        min_change_pct: float = 5.0) -> dict[str, Any]:
    """Queue the allocation's kills (pause) and budget moves of at least ``min_change_pct`` % as proposals."""
    from geminivideo.ml.decisions.approvals import Proposal, propose_changes

    by_id = {s.ad_id: s for s in states}
    proposals, skipped = [], []
    for rec in allocation["recommendations"]:
        state = by_id[rec["ad_id"]]
        if state.tenant_id is None or state.campaign_id is None:
            skipped.append({"ad_id": rec["ad_id"], "reason": "not an ad in the database"})
            continue
        proposal = _proposal(rec, state, min_change_pct)
        if proposal is not None:
            proposals.append(Proposal(**proposal))
    ids = propose_changes(session, proposals)
    return {"proposed": len(ids), "change_ids": ids, "open_elsewhere": len(proposals) - len(ids), "skipped": skipped}


def _proposal(rec: dict[str, Any], s: AdState, min_change_pct: float) -> dict[str, Any] | None:
    common = {"tenant_id": s.tenant_id, "ad_id": s.ad_id, "campaign_id": s.campaign_id,
              "source": ChangeSource.SAMPLER, "evidence": {"probability_best": rec["probability_best"],
                                                          "metrics": rec["metrics"], "reasons": rec["reasons"]}}
    if rec["decision"] == Decision.KILL:
        return {**common, "change_type": ChangeType.PAUSE, "current_value": "active", "requested_value": "paused",
                "reason": "sampler: kill: " + "; ".join(rec["reasons"][-1:]), "confidence": None}
    change = rec["change_pct"]
    if change is None or abs(change) < min_change_pct:
        return None
    return {**common, "change_type": ChangeType.BUDGET, "current_value": rec["current_budget"],
            "requested_value": rec["recommended_budget"],
            "reason": f"sampler: daily budget {change:+.1f}% (P(best)={rec['probability_best']:.3f})",
            "confidence": rec["probability_best"]}
