"""Creative fatigue monitor: judges every active ad on its own daily history, in chunks, vectorised.

Rules (each behind minimum-data guards; thresholds per tenant in ``fatigue_settings``):

- CTR decline: the last ``recent_days`` days against the ad's own baseline (the earlier days of the lookback
  window). Critical when the point decline is at least ``ctr_decline`` *and* the Beta posteriors on the click
  counts give P(recent CTR < (1 - ctr_decline) x baseline CTR) >= ``ctr_confidence`` -> ``FATIGUING``.
- Frequency saturation: lifetime frequency (reported, or a lower bound from daily reach) above
  ``frequency_saturated`` -> ``SATURATED``.
- CPM rise against the baseline: above ``cpm_critical`` -> ``AUDIENCE_EXHAUSTED``, above ``cpm_warning`` a warning.
- Stalled delivery: this week's impressions against last week's at an unchanged budget fall below
  ``stall_min_growth`` -> ``FATIGUING`` (a warning by default).

Critical ads become proposals in the approval queue (pause; a budget cut for saturation), one open per ad.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import special
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from geminivideo.contracts import FatigueScanJob, FatigueScanResult, describe_errors, utcnow
from geminivideo.db.dialect import is_postgresql
from geminivideo.db.models import Ad, AdDailyMetric, Tenant
from geminivideo.db.models.decisions import (
    ChangeSource,
    ChangeType,
    FatigueReport,
    FatigueScan,
    FatigueSettings,
    FatigueStatus,
    Severity,
)
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions import approvals
from geminivideo.ml.decisions.datagen import copy_rows
from geminivideo.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

REPORT_RETENTION_DAYS = 14
_QUADRATURE_POINTS = 32
_MAX_DAYS_UNTIL_CRITICAL = 90.0


class FatigueThresholds(BaseModel):
    """Every knob of the rules; a tenant overrides any of them by name in ``fatigue_settings``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_days: int = Field(3, ge=1, le=60)
    min_impressions: int = Field(1000, ge=0)
    min_window_impressions: int = Field(500, ge=0)
    recent_days: int = Field(3, ge=1, le=14)
    ctr_decline: float = Field(0.20, gt=0, lt=1)
    ctr_confidence: float = Field(0.90, gt=0.5, lt=1)
    ctr_warning_confidence: float = Field(0.70, gt=0, lt=1)
    min_expected_clicks: float = Field(20.0, ge=0)
    frequency_warning: float = Field(2.5, gt=1)
    frequency_saturated: float = Field(3.5, gt=1)
    cpm_warning: float = Field(0.15, gt=0)
    cpm_critical: float = Field(0.50, gt=0)
    stall_min_growth: float = Field(-0.10, gt=-1, lt=1)
    stall_budget_tolerance: float = Field(0.05, ge=0, lt=1)
    stall_severity: Severity = Severity.WARNING
    trend_days: int = Field(7, ge=3, le=30)
    saturation_budget_cut: float = Field(0.20, gt=0, lt=1)

    @classmethod
    def with_overrides(cls, overrides: dict[str, Any] | None) -> FatigueThresholds:
        try:
            return cls.model_validate(overrides or {})
        except ValidationError as exc:
            raise InvalidPayload(f"invalid fatigue thresholds: {describe_errors(exc, root='thresholds')}") from None


# ─── History of one chunk ───────────────────────────────────────────────────────────────────────────
@dataclass
class History:
    """Daily metrics of ``n`` ads over ``d`` calendar days ending at ``as_of`` (0 / NaN where no row)."""

    ad_ids: list[str]
    tenant_ids: list[str]
    campaign_ids: list[str]
    daily_budget: np.ndarray
    as_of: date
    impressions: np.ndarray
    clicks: np.ndarray
    spend: np.ndarray
    reach: np.ndarray
    frequency: np.ndarray
    budget: np.ndarray

    @classmethod
    def empty(cls, ads: Sequence[tuple[str, str, str, float]], as_of: date, days: int) -> History:
        n = len(ads)
        zeros, nans = (lambda: np.zeros((n, days))), (lambda: np.full((n, days), np.nan))
        return cls(
            ad_ids=[a[0] for a in ads], tenant_ids=[a[1] for a in ads], campaign_ids=[a[2] for a in ads],
            daily_budget=np.array([a[3] for a in ads], dtype=float), as_of=as_of, impressions=zeros(),
            clicks=zeros(), spend=zeros(), reach=nans(), frequency=nans(), budget=nans(),
        )

    @property
    def n_days(self) -> int:
        return int(self.impressions.shape[1])

    def fill(self, rows: Sequence[Sequence[Any]]) -> None:
        """Place (ad_id, day, impressions, clicks, spend, reach, frequency, budget) rows; None stays NaN."""
        if not rows:
            return
        ad_col, day_col, *values = zip(*rows, strict=True)
        index = {ad: i for i, ad in enumerate(self.ad_ids)}
        start = self.as_of - timedelta(days=self.n_days - 1)
        day_index = {start + timedelta(days=k): k for k in range(self.n_days)}
        ads = np.fromiter((index[a] for a in ad_col), dtype=np.intp, count=len(rows))
        days = np.fromiter((day_index[d] for d in day_col), dtype=np.intp, count=len(rows))
        targets = (self.impressions, self.clicks, self.spend, self.reach, self.frequency, self.budget)
        for target, column in zip(targets, values, strict=True):
            target[ads, days] = np.array(column, dtype=float)  # None -> NaN

    def fill_numeric(self, rows: np.ndarray) -> None:
        """Place rows of (ad index, day index, impressions, clicks, spend, reach, frequency, budget), NaN = NULL."""
        ads, days = rows[:, 0].astype(np.intp), rows[:, 1].astype(np.intp)
        targets = (self.impressions, self.clicks, self.spend, self.reach, self.frequency, self.budget)
        for k, target in enumerate(targets, start=2):
            target[ads, days] = rows[:, k]


@dataclass
class Verdicts:
    """The outcome for each ad of a History, in the same order."""

    status: np.ndarray
    severity: np.ndarray
    days_until_critical: np.ndarray
    confidence: np.ndarray
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def critical_indices(self) -> np.ndarray:
        return np.flatnonzero(self.severity == Severity.CRITICAL)


# ─── Rules (pure, vectorised) ───────────────────────────────────────────────────────────────────────
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def baseline_quantiles(base_clicks: np.ndarray, base_impressions: np.ndarray) -> np.ndarray:
    """Midpoint quantiles of each baseline CTR posterior Beta(1 + clicks, 1 + non-clicks), shape (n, K)."""
    u = (np.arange(_QUADRATURE_POINTS) + 0.5) / _QUADRATURE_POINTS
    a, b = 1 + base_clicks[:, None], 1 + base_impressions[:, None] - base_clicks[:, None]
    return np.asarray(special.betaincinv(a, b, u[None, :]))


def prob_recent_below(
    recent_clicks: np.ndarray, recent_impressions: np.ndarray, base_q: np.ndarray, factor: float
) -> np.ndarray:
    """P(X < factor * Y) for X ~ Beta(1 + rc, 1 + ri - rc) and Y given by its quantiles ``base_q``, per ad.

    E_Y[F_X(factor * Y)] by midpoint quadrature on Y's quantiles: deterministic, exact to ~1e-3.
    """
    a, b = 1 + recent_clicks[:, None], 1 + recent_impressions[:, None] - recent_clicks[:, None]
    return np.asarray(special.betainc(a, b, np.clip(factor * base_q, 0, 1)).mean(axis=1))


def _last_present(values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    last = values.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    out = values[np.arange(len(values)), last]
    return np.where(present.any(axis=1), out, np.nan)


@dataclass
class _Windows:
    enough: np.ndarray
    active_days: np.ndarray
    total_impressions: np.ndarray
    ri: np.ndarray
    rc: np.ndarray
    rs: np.ndarray
    bi: np.ndarray
    bc: np.ndarray
    bs: np.ndarray
    base_evaluable: np.ndarray


def _windows(h: History, th: FatigueThresholds) -> _Windows:
    r = min(th.recent_days, h.n_days - 1)
    active_days = (h.impressions > 0).sum(axis=1)
    total = h.impressions.sum(axis=1)
    enough = (active_days >= th.min_days) & (total >= th.min_impressions)
    ri, bi = h.impressions[:, -r:].sum(axis=1), h.impressions[:, :-r].sum(axis=1)
    base_days = (h.impressions[:, :-r] > 0).sum(axis=1)
    base_evaluable = (enough & (base_days >= th.min_days) & (bi >= th.min_impressions)
                      & (ri >= th.min_window_impressions))
    return _Windows(
        enough=enough, active_days=active_days, total_impressions=total, ri=ri, rc=h.clicks[:, -r:].sum(axis=1),
        rs=h.spend[:, -r:].sum(axis=1), bi=bi, bc=h.clicks[:, :-r].sum(axis=1), bs=h.spend[:, :-r].sum(axis=1),
        base_evaluable=base_evaluable,
    )


def _drop_one_day(h: History, th: FatigueThresholds, badness: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recent impressions, clicks and spend without each ad's single worst recent day (largest ``badness``).

    A rule must also hold on what is left, so one noisy day alone can never make an ad critical.
    """
    r = min(th.recent_days, h.n_days - 1)
    worst = np.argmax(badness, axis=1)
    rows = np.arange(len(worst))
    window = (h.impressions[:, -r:], h.clicks[:, -r:], h.spend[:, -r:])
    imps, clicks, spend = (part.sum(axis=1) - part[rows, worst] for part in window)
    return imps, clicks, spend


def _ctr_rule(h: History, w: _Windows, th: FatigueThresholds) -> dict[str, np.ndarray]:
    recent, base = _ratio(w.rc, w.ri), _ratio(w.bc, w.bi)
    decline = 1 - _ratio(recent, base)
    # Below ~20 expected clicks a 20 % decline cannot be told from noise: such ads get warnings at most.
    powered = w.ri * np.nan_to_num(base) >= th.min_expected_clicks
    evaluated = w.base_evaluable & (w.bc > 0)
    candidate = evaluated & (decline >= th.ctr_decline)
    prob, robust = np.full(len(recent), np.nan), np.full(len(recent), np.nan)
    factor, c = 1 - th.ctr_decline, np.flatnonzero(candidate)
    if len(c):
        r = min(th.recent_days, h.n_days - 1)
        quantiles = baseline_quantiles(w.bc[c], w.bi[c])
        prob[c] = prob_recent_below(w.rc[c], w.ri[c], quantiles, factor)
        missing_clicks = h.impressions[:, -r:] * np.nan_to_num(base)[:, None] - h.clicks[:, -r:]
        ri2, rc2, _ = _drop_one_day(h, th, missing_clicks)
        strong = (prob[c] >= th.ctr_confidence) & powered[c] & (ri2[c] > 0)
        robust[c] = 0.0
        s = c[strong]
        robust[s] = prob_recent_below(rc2[s], ri2[s], quantiles[strong], factor)
    critical = candidate & powered & (prob >= th.ctr_confidence) & (robust >= th.ctr_confidence)
    warning = candidate & ~critical & (prob >= th.ctr_warning_confidence)
    return {"recent": recent, "base": base, "decline": np.where(evaluated, decline, np.nan), "prob": prob,
            "robust": robust, "critical": critical, "warning": warning, "evaluated": evaluated}


def _frequency_rule(h: History, w: _Windows, th: FatigueThresholds) -> dict[str, np.ndarray]:
    reported = _last_present(np.where(h.impressions > 0, h.frequency, np.nan))
    week = slice(-min(7, h.n_days), None)
    reach_week = np.nansum(np.where(h.impressions[:, week] > 0, h.reach[:, week], np.nan), axis=1)
    # Summed daily reach counts a returning person once per day, so this estimate is a lower bound.
    estimate = _ratio(h.impressions[:, week].sum(axis=1), reach_week)
    value = np.where(np.isnan(reported), estimate, reported)
    evaluated = w.enough & ~np.isnan(value)
    critical = evaluated & (value > th.frequency_saturated)
    return {"value": value, "reported": ~np.isnan(reported), "evaluated": evaluated, "critical": critical,
            "warning": evaluated & ~critical & (value > th.frequency_warning)}


def _cpm_rule(h: History, w: _Windows, th: FatigueThresholds) -> dict[str, np.ndarray]:
    recent, base = 1000 * _ratio(w.rs, w.ri), 1000 * _ratio(w.bs, w.bi)
    rise = _ratio(recent, base) - 1
    evaluated = w.base_evaluable & (w.bs > 0)
    r = min(th.recent_days, h.n_days - 1)
    ri2, _, rs2 = _drop_one_day(h, th, np.nan_to_num(1000 * _ratio(h.spend[:, -r:], h.impressions[:, -r:])))
    robust_rise = _ratio(1000 * _ratio(rs2, ri2), base) - 1
    critical = evaluated & (rise > th.cpm_critical) & (robust_rise > th.cpm_critical)
    return {"recent": recent, "base": base, "rise": np.where(evaluated, rise, np.nan), "evaluated": evaluated,
            "critical": critical, "warning": evaluated & ~critical & (rise > th.cpm_warning)}


def _stall_rule(h: History, w: _Windows, th: FatigueThresholds) -> dict[str, np.ndarray]:
    n = len(h.ad_ids)
    if h.n_days < 14:
        nan = np.full(n, np.nan)
        return {"week": nan, "prior": nan, "growth": nan, "evaluated": np.zeros(n, bool), "stalled": np.zeros(n, bool)}
    week, prior = h.impressions[:, -7:].sum(axis=1), h.impressions[:, -14:-7].sum(axis=1)
    b_week, b_prior = _row_nanmean(h.budget[:, -7:]), _row_nanmean(h.budget[:, -14:-7])
    unchanged = np.abs(_ratio(b_week, b_prior) - 1) <= th.stall_budget_tolerance
    prior_days = (h.impressions[:, -14:-7] > 0).sum(axis=1)
    evaluated = w.enough & unchanged & (prior >= th.min_impressions) & (prior_days >= th.min_days)
    growth = _ratio(week, prior) - 1
    return {"week": week, "prior": prior, "growth": np.where(evaluated, growth, np.nan), "evaluated": evaluated,
            "stalled": evaluated & (growth < th.stall_min_growth)}


def _row_nanmean(values: np.ndarray) -> np.ndarray:
    """Mean of each row's present values; NaN for rows with none (ads without budget data)."""
    present = ~np.isnan(values)
    return _ratio(np.where(present, values, 0).sum(axis=1), present.sum(axis=1))


def _days_until_critical(h: History, ctr: dict[str, np.ndarray], th: FatigueThresholds) -> np.ndarray:
    """Days until the fitted log-CTR trend of the last ``trend_days`` crosses (1 - ctr_decline) x baseline."""
    t = min(th.trend_days, h.n_days)
    imps, clicks = h.impressions[:, -t:], h.clicks[:, -t:]
    x = np.arange(t, dtype=float) - (t - 1)  # 0 = the last day
    y = np.log((clicks + 0.5) / (imps + 1.0))
    weight = imps
    total = weight.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = (weight * x).sum(axis=1) / total
        my = (weight * y).sum(axis=1) / total
        sxx = (weight * (x - mx[:, None]) ** 2).sum(axis=1)
        slope = (weight * (x - mx[:, None]) * (y - my[:, None])).sum(axis=1) / sxx
        now = np.exp(my - slope * mx)
        target = (1 - th.ctr_decline) * ctr["base"]
        days = np.log(target / now) / slope
    days = np.where(now <= target, 0.0, days)
    ok = ctr["evaluated"] & np.isfinite(days) & (days >= 0) & (days <= _MAX_DAYS_UNTIL_CRITICAL)
    ok &= (now <= target) | (slope < 0)
    return np.where(ctr["critical"], 0.0, np.where(ok, days, np.nan))


def evaluate(h: History, th: FatigueThresholds) -> Verdicts:
    """Judge every ad of ``h``: status, severity, days until critical, confidence and the evidence."""
    w = _windows(h, th)
    ctr, freq, cpm = _ctr_rule(h, w, th), _frequency_rule(h, w, th), _cpm_rule(h, w, th)
    stall = _stall_rule(h, w, th)
    stall_critical = stall["stalled"] & (th.stall_severity == Severity.CRITICAL)
    rules = [  # highest priority first: the first rule that holds names the status
        (~w.enough, FatigueStatus.INSUFFICIENT_DATA, Severity.OK),
        (ctr["critical"], FatigueStatus.FATIGUING, Severity.CRITICAL),
        (cpm["critical"], FatigueStatus.AUDIENCE_EXHAUSTED, Severity.CRITICAL),
        (freq["critical"], FatigueStatus.SATURATED, Severity.CRITICAL),
        (stall_critical, FatigueStatus.FATIGUING, Severity.CRITICAL),
        (ctr["warning"], FatigueStatus.FATIGUING, Severity.WARNING),
        (cpm["warning"], FatigueStatus.AUDIENCE_EXHAUSTED, Severity.WARNING),
        (freq["warning"], FatigueStatus.SATURATED, Severity.WARNING),
        (stall["stalled"], FatigueStatus.FATIGUING, Severity.WARNING),
    ]
    conditions = [c for c, _, _ in rules]
    status = np.select(conditions, [s.value for _, s, _ in rules], FatigueStatus.HEALTHY.value).astype(object)
    severity = np.select(conditions, [v.value for _, _, v in rules], Severity.OK.value).astype(object)
    confidence = _confidence(status, ctr, h, cpm, th)
    days = _days_until_critical(h, ctr, th)
    days = np.where(severity == Severity.CRITICAL, 0.0, days)
    evidence = _evidence(w, ctr, freq, cpm, stall)
    return Verdicts(status=status, severity=severity, days_until_critical=days, confidence=confidence,
                    evidence=evidence)


def _confidence(
    status: np.ndarray, ctr: dict[str, np.ndarray], h: History, cpm: dict[str, np.ndarray], th: FatigueThresholds
) -> np.ndarray:
    """FATIGUING: the posterior probability; threshold rules: the share of recent days past the threshold alone."""
    r = min(th.recent_days, h.n_days - 1)
    daily_cpm = 1000 * _ratio(h.spend[:, -r:], h.impressions[:, -r:])
    cpm_days = np.nanmean(np.where(np.isnan(daily_cpm), 0, daily_cpm > (1 + th.cpm_critical) * cpm["base"][:, None]),
                          axis=1)
    freq_days = (np.nan_to_num(h.frequency[:, -r:]) > th.frequency_saturated).mean(axis=1)
    return np.select(
        [status == FatigueStatus.FATIGUING, status == FatigueStatus.AUDIENCE_EXHAUSTED,
         status == FatigueStatus.SATURATED],
        [np.nan_to_num(np.fmin(ctr["prob"], ctr["robust"]), nan=0.5), cpm_days,
         np.where(freq_days > 0, freq_days, 1.0)],
        1.0,
    )


def _clean(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if v != v else v for v in np.round(values.astype(float), digits).tolist()]  # NaN -> None


def _evidence(w: _Windows, ctr: dict[str, np.ndarray], freq: dict[str, np.ndarray], cpm: dict[str, np.ndarray],
              stall: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    columns = {
        "active_days": w.active_days.tolist(), "impressions": w.total_impressions.astype(int).tolist(),
        "recent_impressions": w.ri.astype(int).tolist(), "recent_clicks": w.rc.astype(int).tolist(),
        "baseline_impressions": w.bi.astype(int).tolist(), "baseline_clicks": w.bc.astype(int).tolist(),
        "ctr_recent": _clean(ctr["recent"], 6), "ctr_baseline": _clean(ctr["base"], 6),
        "ctr_decline": _clean(ctr["decline"], 4), "p_ctr_below_threshold": _clean(ctr["prob"], 4),
        "p_ctr_below_threshold_without_worst_day": _clean(ctr["robust"], 4),
        "frequency": _clean(freq["value"], 3), "cpm_recent": _clean(cpm["recent"], 3),
        "cpm_baseline": _clean(cpm["base"], 3), "cpm_rise": _clean(cpm["rise"], 4),
        "week_impressions": _clean(stall["week"], 0), "prior_week_impressions": _clean(stall["prior"], 0),
        "delivery_growth": _clean(stall["growth"], 4),
    }
    freq_source = [("reported" if rep else "daily_reach_lower_bound" if ev else None)
                   for rep, ev in zip(freq["reported"].tolist(), freq["evaluated"].tolist(), strict=True)]
    fired = _fired_rules(ctr, freq, cpm, stall)
    keys = list(columns)
    rows = zip(*columns.values(), freq_source, fired, strict=True)
    return [{**dict(zip(keys, row[:-2], strict=True)), "frequency_source": row[-2], "rules": row[-1]} for row in rows]


def _fired_rules(ctr: dict[str, np.ndarray], freq: dict[str, np.ndarray], cpm: dict[str, np.ndarray],
                 stall: dict[str, np.ndarray]) -> list[list[str]]:
    flags = [
        ("ctr_decline:critical", ctr["critical"]), ("ctr_decline:warning", ctr["warning"]),
        ("frequency:critical", freq["critical"]), ("frequency:warning", freq["warning"]),
        ("cpm_rise:critical", cpm["critical"]), ("cpm_rise:warning", cpm["warning"]),
        ("delivery_stalled", stall["stalled"]),
    ]
    out: list[list[str]] = [[] for _ in range(len(ctr["critical"]))]
    for name, mask in flags:
        for i in np.flatnonzero(mask):
            out[i].append(name)
    return out


# ─── Database I/O ───────────────────────────────────────────────────────────────────────────────────
def latest_metric_day(session: Session, tenant_id: str | None) -> date | None:
    stmt = select(func.max(AdDailyMetric.day))
    if tenant_id:
        stmt = stmt.join(Ad, Ad.id == AdDailyMetric.ad_id).where(Ad.tenant_id == tenant_id)
    return session.scalar(stmt)


def load_thresholds(session: Session, tenant_id: str) -> FatigueThresholds:
    row = session.get(FatigueSettings, tenant_id)
    return FatigueThresholds.with_overrides(row.thresholds if row else None)


def set_thresholds(tenant_id: str, overrides: dict[str, Any]) -> FatigueThresholds:
    """Validate and store a tenant's threshold overrides (unknown names and bad values are refused)."""
    thresholds = FatigueThresholds.with_overrides(overrides)
    with session_scope() as session:
        if session.get(Tenant, tenant_id) is None:  # else the settings row's foreign key fails: a 500, not a 422
            raise InvalidPayload(f"tenant_id: no tenant {tenant_id!r} exists (create the tenant first)")
        row = session.get(FatigueSettings, tenant_id)
        if row is None:
            session.add(FatigueSettings(tenant_id=tenant_id, thresholds=dict(overrides)))
        else:
            row.thresholds = dict(overrides)
    return thresholds


def _active_ads(session: Session, tenant_id: str | None) -> Any:
    stmt = select(Ad.id, Ad.tenant_id, Ad.campaign_id, Ad.daily_budget).where(Ad.status == "active")
    return stmt.where(Ad.tenant_id == tenant_id) if tenant_id else stmt


def iter_ad_chunks(tenant_id: str | None, chunk_size: int) -> Iterator[list[tuple[str, str, str, float]]]:
    """Active ads in id order, ``chunk_size`` at a time (keyset pagination: no OFFSET scans)."""
    last = ""
    while True:
        with session_scope() as session:
            rows = session.execute(_active_ads(session, tenant_id).where(Ad.id > last).order_by(Ad.id)
                                   .limit(chunk_size)).all()
        if not rows:
            return
        yield [(r[0], r[1], r[2], float(r[3] or 0.0)) for r in rows]
        last = rows[-1][0]


def load_history(session: Session, ads: Sequence[tuple[str, str, str, float]], as_of: date, days: int) -> History:
    start = as_of - timedelta(days=days - 1)
    history = History.empty(ads, as_of, days)
    if is_postgresql(session):
        history.fill_numeric(_numeric_rows_pg(session, history.ad_ids, start, as_of))
        return history
    stmt = select(
        AdDailyMetric.ad_id, AdDailyMetric.day, AdDailyMetric.impressions, AdDailyMetric.clicks, AdDailyMetric.spend,
        AdDailyMetric.reach, AdDailyMetric.frequency, AdDailyMetric.budget,
    ).where(AdDailyMetric.ad_id.in_(history.ad_ids), AdDailyMetric.day >= start, AdDailyMetric.day <= as_of)
    history.fill(session.connection().execute(stmt).all())
    return history


_PG_HISTORY_BLOB = """
SELECT string_agg(
  float8send((a.idx - 1)::float8) || float8send((m.day - %(start)s::date)::float8) || float8send(m.impressions::float8)
  || float8send(m.clicks::float8) || float8send(m.spend::float8) || float8send(COALESCE(m.reach::float8, 'NaN'))
  || float8send(COALESCE(m.frequency, 'NaN')) || float8send(COALESCE(m.budget, 'NaN')), ''::bytea)
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS a(ad_id, idx)
JOIN ad_daily_metrics m
  ON m.ad_id = a.ad_id AND m.ad_id BETWEEN %(lo)s AND %(hi)s AND m.day BETWEEN %(start)s AND %(as_of)s
"""


def _numeric_rows_pg(session: Session, ad_ids: list[str], start: date, as_of: date) -> np.ndarray:
    """The chunk's rows as one float array (ad index, day index, metrics), sent by PostgreSQL as one blob.

    The server turns ad ids and days into indices and NULLs into NaN and packs every row as eight
    big-endian float8s into a single bytea, which numpy reads without a Python object per row: the
    per-row tuples (or per-row COPY messages) would cost more than the whole analysis. The id range lets
    the planner walk the (ad_id, day) index instead of scanning the table.
    """
    params = {"ids": list(ad_ids), "lo": min(ad_ids), "hi": max(ad_ids), "start": start, "as_of": as_of}
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor(binary=True) as cursor:
        cursor.execute(_PG_HISTORY_BLOB, params)
        blob = cursor.fetchone()[0] or b""
    return np.frombuffer(blob, dtype=">f8").reshape(-1, 8).astype(float)


def _report_rows(scan_id: int, h: History, v: Verdicts, now: datetime) -> list[dict[str, Any]]:
    days = _clean(v.days_until_critical, 1)
    return [
        {"scan_id": scan_id, "tenant_id": h.tenant_ids[i], "ad_id": ad_id, "campaign_id": h.campaign_ids[i],
         "status": v.status[i], "severity": v.severity[i], "days_until_critical": days[i],
         "evidence": v.evidence[i], "created_at": now}
        for i, ad_id in enumerate(h.ad_ids)
    ]


_REPORT_COLUMNS = ("scan_id", "tenant_id", "ad_id", "campaign_id", "status", "severity", "days_until_critical",
                   "evidence", "created_at")


def write_reports(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store one scan chunk's reports; COPY on PostgreSQL, where 100,000 INSERTed rows would take seconds."""
    if not is_postgresql(session):
        session.execute(insert(FatigueReport), rows)
        return
    copy_rows(session, "fatigue_reports", _REPORT_COLUMNS,
              ([json.dumps(r[c]) if c == "evidence" else r[c] for c in _REPORT_COLUMNS] for r in rows))


def _proposals(
    h: History, v: Verdicts, thresholds: dict[str, FatigueThresholds], scan_id: int
) -> list[approvals.Proposal]:
    out = []
    current: float | str
    requested: float | str
    for i in v.critical_indices():
        status, ev, th = str(v.status[i]), v.evidence[i], thresholds[h.tenant_ids[i]]
        budget = float(h.daily_budget[i])
        if status == FatigueStatus.SATURATED and budget > 0:
            change, current, requested = ChangeType.BUDGET, budget, round(budget * (1 - th.saturation_budget_cut), 2)
            reason = (f"SATURATED: lifetime frequency {ev['frequency']} > {th.frequency_saturated}; "
                      f"cut daily budget {th.saturation_budget_cut:.0%}")
        else:
            change, current, requested = ChangeType.PAUSE, "active", "paused"
            reason = _pause_reason(status, ev, th)
        out.append(approvals.Proposal(
            tenant_id=h.tenant_ids[i], ad_id=h.ad_ids[i], campaign_id=h.campaign_ids[i], change_type=change,
            current_value=current, requested_value=requested, reason=reason, source=ChangeSource.FATIGUE_MONITOR,
            confidence=float(v.confidence[i]), evidence={"scan_id": scan_id, "status": status, **ev},
        ))
    return out


def _pause_reason(status: str, ev: dict[str, Any], th: FatigueThresholds) -> str:
    if status == FatigueStatus.AUDIENCE_EXHAUSTED:
        return f"AUDIENCE_EXHAUSTED: CPM {ev['cpm_recent']} vs baseline {ev['cpm_baseline']} (+{ev['cpm_rise']:.0%})"
    if "ctr_decline:critical" in ev["rules"]:
        return (f"FATIGUING: CTR {ev['ctr_recent']:.4%} over the last {th.recent_days} days vs baseline "
                f"{ev['ctr_baseline']:.4%} (-{ev['ctr_decline']:.0%}, P={ev['p_ctr_below_threshold']:.2f})")
    return f"FATIGUING: delivery {ev['delivery_growth']:+.0%} week over week at an unchanged budget"


# ─── The scan ───────────────────────────────────────────────────────────────────────────────────────
@dataclass
class _Tally:
    ads: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    critical: int = 0
    warnings: int = 0
    proposals: int = 0

    def add(self, v: Verdicts) -> None:
        self.ads += len(v.status)
        for status, count in zip(*np.unique(v.status.astype(str), return_counts=True), strict=True):
            self.by_status[str(status)] = self.by_status.get(str(status), 0) + int(count)
        self.critical += int((v.severity == Severity.CRITICAL).sum())
        self.warnings += int((v.severity == Severity.WARNING).sum())


def scan_all_ads(
    job: FatigueScanJob, on_progress: ProgressCallback = no_progress, *, task_id: str | None = None
) -> FatigueScanResult:
    """Judge every active ad (of ``job.tenant_id``, or all), store reports, queue proposals for critical ads."""
    started = time.monotonic()
    with session_scope() as session:
        as_of = job.as_of or latest_metric_day(session, job.tenant_id) or datetime.now(UTC).date()
        total = int(session.scalar(select(func.count()).select_from(_active_ads(session, job.tenant_id).subquery()))
                    or 0)
        scan = FatigueScan(tenant_id=job.tenant_id, as_of=as_of, status="running", by_status={}, task_id=task_id)
        session.add(scan)
        session.flush()
        scan_id = scan.id
    tally = _Tally()
    try:
        for ads in iter_ad_chunks(job.tenant_id, job.chunk_size):
            _scan_chunk(scan_id, ads, as_of, job, tally)
            on_progress(100.0 * tally.ads / max(total, 1), f"{tally.ads}/{total} ads scanned")
    except BaseException:
        _finish_scan(scan_id, tally, "failed")
        raise
    _finish_scan(scan_id, tally, "completed")
    prune_reports(REPORT_RETENTION_DAYS)
    return FatigueScanResult(
        ads_scanned=tally.ads, by_status=tally.by_status, critical=tally.critical, proposals_created=tally.proposals,
        timestamp=utcnow(), scan_id=scan_id, as_of=as_of, warnings=tally.warnings,
        duration_s=round(time.monotonic() - started, 3),
    )


def _scan_chunk(scan_id: int, ads: list[tuple[str, str, str, float]], as_of: date, job: FatigueScanJob,
                tally: _Tally) -> None:
    with session_scope() as session:
        history = load_history(session, ads, as_of, job.lookback_days)
        thresholds = {t: load_thresholds(session, t) for t in set(history.tenant_ids)}
    verdicts = _evaluate_by_tenant(history, thresholds)
    with session_scope() as session:
        write_reports(session, _report_rows(scan_id, history, verdicts, utcnow()))
        if job.create_proposals:
            proposals = _proposals(history, verdicts, thresholds, scan_id)
            tally.proposals += len(approvals.propose_changes(session, proposals))
    tally.add(verdicts)


def _evaluate_by_tenant(h: History, thresholds: dict[str, FatigueThresholds]) -> Verdicts:
    if len(thresholds) == 1:
        return evaluate(h, next(iter(thresholds.values())))
    n = len(h.ad_ids)
    out = Verdicts(np.empty(n, object), np.empty(n, object), np.full(n, np.nan), np.ones(n), [{}] * n)
    tenants = np.array(h.tenant_ids, dtype=object)
    for tenant, th in thresholds.items():
        idx = np.flatnonzero(tenants == tenant)
        part = evaluate(_subset(h, idx), th)
        out.status[idx], out.severity[idx] = part.status, part.severity
        out.days_until_critical[idx], out.confidence[idx] = part.days_until_critical, part.confidence
        for j, i in enumerate(idx):
            out.evidence[i] = part.evidence[j]
    return out


def _subset(h: History, idx: np.ndarray) -> History:
    pick = idx.tolist()
    return History(
        ad_ids=[h.ad_ids[i] for i in pick], tenant_ids=[h.tenant_ids[i] for i in pick],
        campaign_ids=[h.campaign_ids[i] for i in pick], daily_budget=h.daily_budget[idx], as_of=h.as_of,
        impressions=h.impressions[idx], clicks=h.clicks[idx], spend=h.spend[idx], reach=h.reach[idx],
        frequency=h.frequency[idx], budget=h.budget[idx],
    )


def _finish_scan(scan_id: int, tally: _Tally, status: str) -> None:
    with session_scope() as session:
        session.execute(update(FatigueScan).where(FatigueScan.id == scan_id).values(
            status=status, ads_scanned=tally.ads, by_status=tally.by_status, critical=tally.critical,
            proposals_created=tally.proposals, finished_at=utcnow()))


def prune_reports(retention_days: int) -> int:
    """Drop scans (and, by cascade, their reports) older than ``retention_days``."""
    cutoff = utcnow() - timedelta(days=retention_days)
    with session_scope() as session:
        result = session.execute(delete(FatigueScan).where(FatigueScan.started_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# ─── Reading reports (API, CLI, sampler) ────────────────────────────────────────────────────────────
def _scan_dict(scan: FatigueScan) -> dict[str, Any]:
    return {"scan_id": scan.id, "tenant_id": scan.tenant_id, "as_of": scan.as_of.isoformat(), "status": scan.status,
            "ads_scanned": scan.ads_scanned, "by_status": scan.by_status, "critical": scan.critical,
            "proposals_created": scan.proposals_created, "started_at": scan.started_at.isoformat(),
            "finished_at": scan.finished_at.isoformat() if scan.finished_at else None}


def _report_dict(r: FatigueReport) -> dict[str, Any]:
    return {"scan_id": r.scan_id, "ad_id": r.ad_id, "tenant_id": r.tenant_id, "campaign_id": r.campaign_id,
            "status": r.status, "severity": r.severity, "days_until_critical": r.days_until_critical,
            "evidence": r.evidence, "created_at": r.created_at.isoformat()}


def latest_scan(session: Session, tenant_id: str | None = None) -> FatigueScan | None:
    stmt = select(FatigueScan).where(FatigueScan.status == "completed")
    if tenant_id:
        stmt = stmt.where((FatigueScan.tenant_id == tenant_id) | FatigueScan.tenant_id.is_(None))
    return session.scalars(stmt.order_by(FatigueScan.id.desc()).limit(1)).first()


def fatigue_report(
    *, tenant_id: str | None = None, scan_id: int | None = None, status: str | None = None,
    severity: str | None = None, limit: int = 100, offset: int = 0,
) -> dict[str, Any] | None:
    """A completed scan's summary and its per-ad reports (latest scan unless ``scan_id``), filtered."""
    with session_scope() as session:
        scan = session.get(FatigueScan, scan_id) if scan_id else latest_scan(session, tenant_id)
        if scan is None:
            return None
        stmt = select(FatigueReport).where(FatigueReport.scan_id == scan.id)
        for column, value in ((FatigueReport.tenant_id, tenant_id), (FatigueReport.status, status),
                              (FatigueReport.severity, severity)):
            if value:
                stmt = stmt.where(column == value)
        reports = session.scalars(stmt.order_by(FatigueReport.id).limit(limit).offset(offset)).all()
        return {"scan": _scan_dict(scan), "reports": [_report_dict(r) for r in reports]}


def ad_reports(ad_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The latest reports of one ad, newest first."""
    with session_scope() as session:
        stmt = select(FatigueReport).where(FatigueReport.ad_id == ad_id).order_by(FatigueReport.id.desc()).limit(limit)
        return [_report_dict(r) for r in session.scalars(stmt)]


def latest_verdicts(session: Session, ad_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(status, severity) of each ad's newest report, for the ads that have one."""
    if not ad_ids:
        return {}
    newest = (select(func.max(FatigueReport.id).label("id")).where(FatigueReport.ad_id.in_(list(ad_ids)))
              .group_by(FatigueReport.ad_id).subquery())
    rows = session.execute(select(FatigueReport.ad_id, FatigueReport.status, FatigueReport.severity)
                           .join(newest, newest.c.id == FatigueReport.id))
    return {ad: (status, severity) for ad, status, severity in rows}
