"""A real daily export loads the same tables the generator writes, and the monitor judges it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from geminivideo.contracts import FatigueScanJob
from geminivideo.db.models import Ad, AdDailyMetric
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions import fatigue
from geminivideo.ml.decisions.datagen import import_metrics_csv


def export(path: Path, tenant: str, clicks_last_days: int) -> Path:
    """Two ads over 20 days: a steady one and one whose CTR collapses over the last 4 days."""
    start = date(2026, 3, 1)
    lines = ["date,ad_id,campaign_id,impressions,reach,clicks,spend,conversions"]
    for day in range(20):
        d = (start + timedelta(days=day)).isoformat()
        lines.append(f"{d},{tenant}-steady,{tenant}-c1,5000,4600,75,60.00,2")
        late = clicks_last_days if day >= 16 else 75
        lines.append(f"{d},{tenant}-worn,{tenant}-c1,5000,4600,{late},60.00,1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_import_loads_metrics_updates_on_reimport_and_is_judged(tenant: str, tmp_path: Path) -> None:
    result = import_metrics_csv(export(tmp_path / "a.csv", tenant, clicks_last_days=70), tenant_id=tenant)
    assert (result.rows, result.ads_created, result.ads) == (40, 2, 2)
    again = import_metrics_csv(export(tmp_path / "b.csv", tenant, clicks_last_days=30), tenant_id=tenant)
    assert (again.rows, again.ads_created) == (40, 0), "re-importing updates the days, creates no ads"
    with session_scope() as session:
        rows = session.scalars(select(AdDailyMetric).where(AdDailyMetric.ad_id == f"{tenant}-worn")
                               .order_by(AdDailyMetric.day)).all()
        ad = session.get(Ad, f"{tenant}-worn")
        assert ad is not None and ad.campaign_id == f"{tenant}-c1" and ad.daily_budget == 60.0
    assert len(rows) == 20 and rows[-1].clicks == 30 and rows[0].reach == 4600
    scan = fatigue.scan_all_ads(FatigueScanJob(tenant_id=tenant, as_of=date(2026, 3, 20), create_proposals=False))
    verdicts = {r["ad_id"]: (r["status"], r["severity"]) for r in
                fatigue.fatigue_report(scan_id=scan.scan_id, limit=10)["reports"]}  # type: ignore[index]
    assert verdicts == {f"{tenant}-steady": ("HEALTHY", "ok"), f"{tenant}-worn": ("FATIGUING", "critical")}


def test_a_bad_export_is_refused_whole(tenant: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("date,ad_id,campaign_id,impressions,reach,clicks,spend,conversions\n"
                    f"2026-03-01,{tenant}-x,c,100,90,1,1.0,0\n"
                    f"2026-03-02,{tenant}-x,c,100,90,-1,1.0,0\n")
    with pytest.raises(InvalidPayload, match=r"line 3.*'clicks'"):
        import_metrics_csv(path, tenant_id=tenant)
    with session_scope() as session:
        assert session.get(Ad, f"{tenant}-x") is None
