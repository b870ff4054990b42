"""Fatigue rules on daily histories: guards, each rule, robustness to one noisy day, and a simulated population."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pytest

from geminivideo.db.models.decisions import FatigueStatus, Severity
from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions.datagen import DatasetSpec, Profile, simulate
from geminivideo.ml.decisions.fatigue import (
    FatigueThresholds,
    History,
    Verdicts,
    baseline_quantiles,
    evaluate,
    prob_recent_below,
)

DAYS = 30
Daily = float | Sequence[float] | np.ndarray  # one figure for every day, or one per day
DEFAULT = FatigueThresholds()


def one_ad(impressions: Daily, clicks: Daily, spend: Daily | None = None, *, frequency: Daily | None = None,
           reach: Daily | None = None, budget: Daily = 50.0) -> History:
    """A History of one ad from per-day sequences (numbers broadcast to DAYS days)."""
    imps = np.broadcast_to(np.asarray(impressions, dtype=float), (DAYS,)).copy()
    clk = np.broadcast_to(np.asarray(clicks, dtype=float), (DAYS,)).copy()
    spd = imps * 0.012 if spend is None else np.broadcast_to(np.asarray(spend, dtype=float), (DAYS,)).copy()
    h = History.empty([("ad-1", "t", "c", 50.0)], date(2026, 1, 30), DAYS)
    h.impressions[0], h.clicks[0], h.spend[0] = imps, clk, spd
    h.budget[0] = np.broadcast_to(np.asarray(budget, dtype=float), (DAYS,))
    if frequency is not None:
        h.frequency[0] = np.broadcast_to(np.asarray(frequency, dtype=float), (DAYS,))
    if reach is not None:
        h.reach[0] = np.broadcast_to(np.asarray(reach, dtype=float), (DAYS,))
    return h


def verdict(h: History, th: FatigueThresholds = DEFAULT) -> tuple[str, str, Verdicts]:
    v = evaluate(h, th)
    return str(v.status[0]), str(v.severity[0]), v


def series(base: float, last: list[float]) -> np.ndarray:
    return np.array([base] * (DAYS - len(last)) + last)


@pytest.mark.parametrize("volume", [400, 5000])
def test_one_noisy_day_never_makes_an_ad_critical(volume: int) -> None:
    """Given a steady ad, when its last day shows zero clicks and a 4x CPM, then it is not critical."""
    clicks = series(volume * 0.015, [volume * 0.015, volume * 0.015, 0])
    spend = series(volume * 0.012, [volume * 0.012, volume * 0.012, volume * 0.048])
    status, severity, v = verdict(one_ad(volume, clicks, spend))
    assert severity != Severity.CRITICAL, (status, v.evidence[0])


def test_a_sustained_ctr_decline_is_fatiguing_and_critical_with_its_evidence() -> None:
    clicks = series(75, [60, 50, 45, 42, 40])  # 1.5 % falling to 0.8 % over five days on 5,000 impressions a day
    status, severity, v = verdict(one_ad(5000, clicks))
    ev = v.evidence[0]
    assert (status, severity) == (FatigueStatus.FATIGUING, Severity.CRITICAL)
    assert ev["ctr_decline"] >= 0.2 and ev["p_ctr_below_threshold"] >= 0.9
    assert ev["p_ctr_below_threshold_without_worst_day"] >= 0.9
    assert "ctr_decline:critical" in ev["rules"]
    assert v.days_until_critical[0] == 0
    assert v.confidence[0] >= 0.9


def test_a_decline_on_too_few_clicks_is_a_warning_at_most() -> None:
    clicks = series(3, [2, 1, 1])  # 0.75 % -> 0.33 % on 400 impressions a day: ~9 expected clicks
    _status, severity, _ = verdict(one_ad(400, clicks))
    assert severity != Severity.CRITICAL


def test_a_gentle_decline_gives_days_until_critical_from_the_trend() -> None:
    clicks = series(75, [74, 72, 70, 68, 66, 64, 63])  # -2.5 %/day, still above 0.8 x baseline
    _status, severity, v = verdict(one_ad(5000, clicks))
    assert severity != Severity.CRITICAL
    assert 1 <= v.days_until_critical[0] <= 20


@pytest.mark.parametrize(("days", "per_day"), [(2, 10_000), (10, 50)])
def test_too_little_history_is_insufficient_data(days: int, per_day: int) -> None:
    imps = np.array([0] * (DAYS - days) + [per_day] * days)
    status, severity, _ = verdict(one_ad(imps, imps * 0.015))
    assert (status, severity) == (FatigueStatus.INSUFFICIENT_DATA, Severity.OK)


def test_frequency_above_3_5_is_saturated() -> None:
    freq = np.linspace(1.0, 3.8, DAYS)
    status, severity, v = verdict(one_ad(5000, 75, frequency=freq))
    assert (status, severity) == (FatigueStatus.SATURATED, Severity.CRITICAL)
    assert v.evidence[0]["frequency_source"] == "reported"


def test_without_reported_frequency_daily_reach_gives_a_lower_bound() -> None:
    status, severity, v = verdict(one_ad(5000, 75, reach=1250))  # 4 impressions per person per day at least
    assert (status, severity) == (FatigueStatus.SATURATED, Severity.CRITICAL)
    assert v.evidence[0]["frequency_source"] == "daily_reach_lower_bound"


def test_tenant_thresholds_change_the_verdict_and_bad_ones_are_refused() -> None:
    h = one_ad(5000, 75, frequency=3.8)
    assert verdict(h, FatigueThresholds.with_overrides({"frequency_saturated": 5.0}))[1] != Severity.CRITICAL
    with pytest.raises(InvalidPayload, match="frequency_saturated"):
        FatigueThresholds.with_overrides({"frequency_saturated": "high"})
    with pytest.raises(InvalidPayload, match="no_such_rule"):
        FatigueThresholds.with_overrides({"no_such_rule": 1})


@pytest.mark.parametrize(("recent_cpm", "expected"), [(0.018, Severity.CRITICAL), (0.0132, Severity.WARNING),
                                                      (0.011, Severity.OK)])
def test_cpm_rise_against_the_baseline(recent_cpm: float, expected: Severity) -> None:
    spend = series(5000 * 0.010, [5000 * recent_cpm] * 3)
    status, severity, _ = verdict(one_ad(5000, 75, spend))
    assert severity == expected
    if expected != Severity.OK:
        assert status == FatigueStatus.AUDIENCE_EXHAUSTED


def test_stalled_delivery_at_an_unchanged_budget_is_a_fatiguing_warning() -> None:
    imps = series(5000, [3300] * 7)
    status, severity, v = verdict(one_ad(imps, imps * 0.015))
    assert (status, severity) == (FatigueStatus.FATIGUING, Severity.WARNING)
    assert "delivery_stalled" in v.evidence[0]["rules"]
    cut = series(50.0, [33.0] * 7)  # the same fall after a budget cut is not a stall
    assert verdict(one_ad(imps, imps * 0.015, budget=cut))[1] == Severity.OK


def test_posterior_probability_matches_monte_carlo() -> None:
    rc, ri, bc, bi = np.array([40.0]), np.array([5000.0]), np.array([400.0]), np.array([30000.0])
    exact = prob_recent_below(rc, ri, baseline_quantiles(bc, bi), 0.8)[0]
    rng = np.random.default_rng(0)
    x = rng.beta(1 + rc[0], 1 + ri[0] - rc[0], 400_000)
    y = rng.beta(1 + bc[0], 1 + bi[0] - bc[0], 400_000)
    assert exact == pytest.approx((x < 0.8 * y).mean(), abs=0.01)


def test_on_a_simulated_population_fatigue_is_found_and_noise_is_not_called_critical() -> None:
    """5,000 generated ads with known truth: recall >= 95 %, false criticals <= 0.1 % healthy, <= 1 % small."""
    spec = DatasetSpec(n_ads=5000, days=30, seed=21, chunk_ads=5000)
    chunk = next(simulate(spec))
    n = len(chunk.ad_ids)
    h = History(ad_ids=chunk.ad_ids, tenant_ids=["t"] * n, campaign_ids=chunk.campaign_ids,
                daily_budget=chunk.daily_budget, as_of=spec.last_day, impressions=chunk.impressions.astype(float),
                clicks=chunk.clicks.astype(float), spend=chunk.spend, reach=chunk.reach.astype(float),
                frequency=np.where(chunk.impressions > 0, chunk.frequency, np.nan),
                budget=np.repeat(chunk.daily_budget[:, None], spec.days, axis=1))
    v = evaluate(h, DEFAULT)
    profiles = np.array([p.value for p in chunk.profiles])
    critical = v.severity == Severity.CRITICAL

    def rate(profile: Profile) -> float:
        return float(critical[profiles == profile.value].mean())

    assert rate(Profile.CREATIVE_FATIGUE) >= 0.95
    assert rate(Profile.SATURATING) >= 0.95
    assert rate(Profile.HEALTHY) <= 0.001
    assert rate(Profile.SMALL_NOISY) <= 0.01
    assert rate(Profile.STALLING) <= 0.01
    assert (v.status[profiles == Profile.NEW.value] == FatigueStatus.INSUFFICIENT_DATA).all()
