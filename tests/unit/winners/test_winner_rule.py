"""The one definition of a winner: thresholds on ROAS, spend, impressions and CTR (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geminivideo.ml.winners.service import DEFAULT_THRESHOLDS, AdPerformance, Thresholds, why_not_winner


def perf(impressions: int = 1000, clicks: int = 10, spend: float = 100.0, value: float = 300.0) -> AdPerformance:
    return AdPerformance("ad", "t", "c", impressions, clicks, spend, value)


def test_defaults_are_the_documented_ones() -> None:
    assert Thresholds(min_roas=3.0, min_spend=100.0, min_impressions=1000, min_ctr=0.01) == DEFAULT_THRESHOLDS


def test_exactly_at_every_threshold_is_a_winner() -> None:
    assert why_not_winner(perf(), DEFAULT_THRESHOLDS) == []


def test_each_missed_threshold_is_named() -> None:
    reasons = why_not_winner(perf(impressions=999, clicks=9, spend=99.0, value=290.0), DEFAULT_THRESHOLDS)
    assert len(reasons) == 4
    assert "spend $99.00 is below the $100.00 minimum" in reasons
    assert "impressions 999 are below the 1,000 minimum" in reasons
    assert "pipeline ROAS 2.93 is below 3.00" in reasons
    assert any(reason.startswith("CTR 0.90% is below 1.00%") for reason in reasons)


def test_no_spend_or_no_impressions_never_divides_by_zero() -> None:
    empty = perf(impressions=0, clicks=0, spend=0.0, value=500.0)
    assert empty.roas == 0.0 and empty.ctr == 0.0
    assert len(why_not_winner(empty, DEFAULT_THRESHOLDS)) == 4


def test_tenant_thresholds_change_the_verdict() -> None:
    strict = Thresholds(min_roas=10.0)
    assert why_not_winner(perf(value=500.0), DEFAULT_THRESHOLDS) == []
    assert why_not_winner(perf(value=500.0), strict) == ["pipeline ROAS 5.00 is below 10.00"]


@given(
    impressions=st.integers(0, 10**7),
    clicks_share=st.floats(0, 1),
    spend=st.floats(0, 1e6, allow_nan=False),
    value=st.floats(0, 1e7, allow_nan=False),
)
def test_winner_iff_every_threshold_is_met(impressions: int, clicks_share: float, spend: float, value: float) -> None:
    p = perf(impressions=impressions, clicks=int(impressions * clicks_share), spend=spend, value=value)
    expected = spend >= 100 and impressions >= 1000 and p.roas >= 3.0 and p.ctr >= 0.01
    assert (why_not_winner(p, DEFAULT_THRESHOLDS) == []) is expected
