"""The evidence behind a proposal: an ad's last 30 days as the fatigue monitor saw them.

For each of CTR, CPM, frequency and spend: the daily values, the baseline band (the monitor's baseline
window, i.e. the days before its recent window) and the threshold the monitor compares against; plus the
detected change point of the CTR (the split of the 30 days into two constant-CTR segments with the highest
binomial likelihood) and the start of the monitor's recent window. Plain functions over the monitor's own
``load_history`` and thresholds, so the charts show exactly the numbers it judged.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geminivideo.db.models import Ad, AdDailyMetric
from geminivideo.db.models.decisions import FatigueScan
from geminivideo.ml.decisions.fatigue import (
    FatigueThresholds,
    History,
    baseline_quantiles,
    load_history,
    load_thresholds,
)

EVIDENCE_DAYS = 30
_BAND_QUANTILES = (1, 30)  # of the 32 midpoint quantiles: about the 5th and 95th percentiles


def _clean(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def _ratio(num: np.ndarray, den: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, scale * num / np.where(den > 0, den, 1), np.nan)


def ctr_change_point(impressions: np.ndarray, clicks: np.ndarray, min_segment: int = 3) -> int | None:
    """Index of the first day after the most likely CTR change (two binomial segments), or None.

    For every split k the log-likelihood of clicks under one CTR before k and another from k on is
    compared with one CTR for all days; the best split wins when it beats no split by more than 2 (a
    likelihood-ratio guard, so a flat series has no change point).
    """
    n = len(impressions)
    if n < 2 * min_segment or impressions.sum() <= 0:
        return None
    cum_i, cum_c = np.cumsum(impressions), np.cumsum(clicks)

    def loglik(c: np.ndarray, i: np.ndarray) -> np.ndarray:
        p = _ratio(c, i)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(c > 0, c * np.log(np.where(p > 0, p, 1)), 0.0)
            term += np.where(i - c > 0, (i - c) * np.log(np.where(p < 1, 1 - p, 1)), 0.0)
        return np.asarray(np.nan_to_num(term))

    ks = np.arange(min_segment, n - min_segment + 1)
    left = loglik(cum_c[ks - 1], cum_i[ks - 1])
    right = loglik(cum_c[-1] - cum_c[ks - 1], cum_i[-1] - cum_i[ks - 1])
    whole = float(loglik(cum_c[-1:], cum_i[-1:])[0])
    gain = left + right - whole
    best = int(np.argmax(gain))
    return int(ks[best]) if gain[best] > 2.0 else None


def _band(values: np.ndarray, baseline: slice) -> list[float | None]:
    """Mean ± one standard deviation of the baseline days that have a value."""
    base = values[baseline]
    base = base[np.isfinite(base)]
    if len(base) == 0:
        return [None, None]
    mean, sd = float(base.mean()), float(base.std())
    return [round(max(mean - sd, 0.0), 6), round(mean + sd, 6)]


def series(h: History, th: FatigueThresholds) -> dict[str, Any]:
    """Chart data of the single ad in ``h``: days, four metrics with bands and thresholds, change points."""
    imps, clicks, spend = h.impressions[0], h.clicks[0], h.spend[0]
    n, recent = h.n_days, min(th.recent_days, h.n_days - 1)
    baseline = slice(0, n - recent)
    ctr = _ratio(clicks, imps)
    cpm = _ratio(spend, imps, 1000.0)
    frequency = np.where(np.isnan(h.frequency[0]), _ratio(imps, h.reach[0]), h.frequency[0])
    frequency = np.where(imps > 0, frequency, np.nan)
    base_ctr = float(_ratio(clicks[baseline].sum(), imps[baseline].sum()))
    base_cpm = float(_ratio(spend[baseline].sum(), imps[baseline].sum(), 1000.0))
    ctr_band: list[float | None] = [None, None]
    if imps[baseline].sum() > 0:
        q = baseline_quantiles(np.array([clicks[baseline].sum()]), np.array([imps[baseline].sum()]))[0]
        ctr_band = [round(float(q[_BAND_QUANTILES[0]]), 6), round(float(q[_BAND_QUANTILES[1]]), 6)]
    start = h.as_of - timedelta(days=n - 1)
    change = ctr_change_point(imps, clicks)
    metrics = [
        _metric("ctr", "CTR", "%", ctr, ctr_band, _finite((1 - th.ctr_decline) * base_ctr),
                f"critical below {1 - th.ctr_decline:.0%} of baseline"),
        _metric("cpm", "CPM", "$", cpm, _finite_band(base_cpm, th.cpm_warning),
                _finite((1 + th.cpm_critical) * base_cpm), f"critical above +{th.cpm_critical:.0%}"),
        _metric("frequency", "Frequency", "×", frequency, _band(frequency, baseline), th.frequency_saturated,
                f"saturated above {th.frequency_saturated:g}"),
        _metric("spend", "Spend", "$", spend.astype(float), _band(spend.astype(float), baseline), None, ""),
    ]
    return {
        "ad_id": h.ad_ids[0], "as_of": h.as_of.isoformat(),
        "days": [(start + timedelta(days=k)).isoformat() for k in range(n)],
        "change_point": (start + timedelta(days=change)).isoformat() if change is not None else None,
        "recent_window_start": (start + timedelta(days=n - recent)).isoformat(),
        "baseline_ctr": _finite(base_ctr), "baseline_cpm": _finite(base_cpm), "metrics": metrics,
    }


def _finite(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


def _finite_band(center: float, width: float) -> list[float | None]:
    if not np.isfinite(center):
        return [None, None]
    return [round(center * (1 - width), 6), round(center * (1 + width), 6)]


def _metric(key: str, label: str, unit: str, values: np.ndarray, band: list[float | None],
            threshold: float | None, threshold_label: str) -> dict[str, Any]:
    return {"key": key, "label": label, "unit": unit, "values": _clean(values), "band": band,
            "threshold": threshold, "threshold_label": threshold_label}


def _as_of(session: Session, ad_id: str, evidence: dict[str, Any]) -> date | None:
    scan_id = evidence.get("scan_id")
    if isinstance(scan_id, int):
        scan = session.get(FatigueScan, scan_id)
        if scan is not None:
            return scan.as_of
    return session.scalar(select(func.max(AdDailyMetric.day)).where(AdDailyMetric.ad_id == ad_id))


def ad_evidence(session: Session, ad_id: str, evidence: dict[str, Any] | None = None,
                days: int = EVIDENCE_DAYS) -> dict[str, Any] | None:
    """Chart data for ``ad_id`` over ``days`` days ending where the proposal's scan looked; None without data."""
    ad = session.get(Ad, ad_id)
    if ad is None:
        return None
    as_of = _as_of(session, ad_id, evidence or {})
    if as_of is None:
        return None
    history = load_history(session, [(ad.id, ad.tenant_id, ad.campaign_id, float(ad.daily_budget or 0.0))],
                           as_of, days)
    return series(history, load_thresholds(session, ad.tenant_id))
