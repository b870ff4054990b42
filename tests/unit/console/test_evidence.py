"""The console's evidence series: the change point detector and the chart data built from a monitor History."""

from __future__ import annotations

from datetime import date

import numpy as np

from geminivideo.api.console.evidence import ctr_change_point, series
from geminivideo.ml.decisions.fatigue import FatigueThresholds, History


def test_a_step_in_ctr_is_found_where_it_happens() -> None:
    impressions = np.full(30, 5000.0)
    clicks = np.where(np.arange(30) < 22, 100.0, 50.0)
    assert ctr_change_point(impressions, clicks) == 22


def test_a_flat_or_noisy_ctr_has_no_change_point() -> None:
    rng = np.random.default_rng(7)
    impressions = np.full(30, 5000.0)
    assert ctr_change_point(impressions, rng.binomial(5000, 0.02, 30).astype(float)) is None
    assert ctr_change_point(np.zeros(30), np.zeros(30)) is None
    assert ctr_change_point(np.full(4, 100.0), np.full(4, 2.0)) is None  # too short to split


def test_series_marks_band_threshold_and_windows() -> None:
    h = History.empty([("ad-1", "t", "c", 100.0)], date(2026, 11, 30), 30)
    h.impressions[0] = 5000
    h.clicks[0] = np.where(np.arange(30) < 26, 100, 50)
    h.spend[0] = 40.0
    h.reach[0] = 4000
    th = FatigueThresholds()
    data = series(h, th)
    assert data["days"][0] == "2026-11-01" and data["days"][-1] == "2026-11-30"
    assert data["change_point"] == "2026-11-27"
    assert data["recent_window_start"] == "2026-11-28"  # recent_days = 3
    metrics = {m["key"]: m for m in data["metrics"]}
    ctr = metrics["ctr"]
    assert ctr["band"][0] < 0.02 < ctr["band"][1]  # the baseline CTR's posterior interval
    assert abs(ctr["threshold"] - 0.8 * data["baseline_ctr"]) < 1e-6
    assert metrics["cpm"]["values"][0] == 8.0 and abs(metrics["cpm"]["threshold"] - 12.0) < 1e-6
    assert metrics["frequency"]["values"][0] == 1.25 and metrics["frequency"]["threshold"] == th.frequency_saturated
    assert metrics["spend"]["band"] == [40.0, 40.0] and metrics["spend"]["threshold"] is None


def test_days_without_delivery_are_gaps_not_zeros() -> None:
    h = History.empty([("ad-1", "t", "c", 100.0)], date(2026, 11, 30), 10)
    h.impressions[0, 5:] = 1000
    h.clicks[0, 5:] = 10
    data = series(h, FatigueThresholds())
    ctr = next(m for m in data["metrics"] if m["key"] == "ctr")
    assert ctr["values"][:5] == [None] * 5 and ctr["values"][5] == 0.01
