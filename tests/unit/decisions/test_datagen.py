"""The ad-history generator: deterministic, calibrated to public medians; CSV rows validated before import."""

from __future__ import annotations

import io

import numpy as np
import pytest

from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions.datagen import DatasetSpec, Profile, _read_csv, assign_profiles, simulate


def test_the_same_spec_gives_the_same_rows_and_another_seed_does_not() -> None:
    spec = DatasetSpec(n_ads=300, days=20, seed=5, chunk_ads=100)
    first, again = list(simulate(spec)), list(simulate(spec))
    other = list(simulate(DatasetSpec(n_ads=300, days=20, seed=6, chunk_ads=100)))
    for a, b in zip(first, again, strict=True):
        assert a.ad_ids == b.ad_ids and np.array_equal(a.clicks, b.clicks) and np.array_equal(a.spend, b.spend)
        assert np.array_equal(a.pipeline_value, b.pipeline_value)
    assert not np.array_equal(first[0].clicks, other[0].clicks)


def test_profiles_get_their_exact_shares() -> None:
    spec = DatasetSpec(n_ads=1000, seed=1)
    labels = assign_profiles(spec)
    for profile, share in spec.mix.items():
        assert abs((labels == profile).sum() - share * 1000) <= 1


def test_histories_are_calibrated_to_public_medians() -> None:
    chunk = next(simulate(DatasetSpec(n_ads=2000, days=30, seed=2, chunk_ads=2000)))
    live = chunk.impressions.sum(axis=1) > 0
    ctr = chunk.clicks.sum(axis=1)[live] / chunk.impressions.sum(axis=1)[live]
    cpm = 1000 * chunk.spend.sum(axis=1)[live] / chunk.impressions.sum(axis=1)[live]
    assert 0.01 <= np.median(ctr) <= 0.02
    assert 10 <= np.median(cpm) <= 14
    assert (chunk.clicks <= chunk.impressions).all() and (chunk.conversions <= chunk.clicks).all()
    saturating = np.array([p is Profile.SATURATING for p in chunk.profiles])
    assert (chunk.frequency[saturating, -1] > 3.5).all()
    assert (chunk.frequency[~saturating & live, -1] < 2.0).all()
    roas = chunk.pipeline_value.sum() / chunk.spend.sum()
    assert 0.5 < roas < 5, "credited pipeline value per dollar is in a plausible range"
    assert chunk.cash_revenue.sum() > 0, "some deals have closed"
    assert (chunk.cash_revenue <= chunk.pipeline_value + 0.01).all(), "won deals count fully in both"


def test_csv_rows_are_validated_naming_line_and_column() -> None:
    header = "date,ad_id,campaign_id,impressions,reach,clicks,spend,conversions\n"
    good = _read_csv(io.StringIO(header + "2026-01-01,a1,c1,1000,800,12,11.5,1\n"))
    assert good[0]["clicks"] == 12 and good[0]["reach"] == 800
    with pytest.raises(InvalidPayload, match=r"missing column.*spend"):
        _read_csv(io.StringIO("date,ad_id,campaign_id,impressions,reach,clicks,conversions\n"))
    with pytest.raises(InvalidPayload, match=r"line 2.*'date'"):
        _read_csv(io.StringIO(header + "01/02/2026,a1,c1,1000,800,12,11.5,1\n"))
    with pytest.raises(InvalidPayload, match=r"line 3.*'spend'.*not a number"):
        _read_csv(io.StringIO(header + "2026-01-01,a1,c1,1000,800,12,11.5,1\n2026-01-02,a1,c1,1000,800,12,abc,1\n"))
    with pytest.raises(InvalidPayload, match=r"clicks .* exceed impressions"):
        _read_csv(io.StringIO(header + "2026-01-01,a1,c1,10,8,12,1,0\n"))
