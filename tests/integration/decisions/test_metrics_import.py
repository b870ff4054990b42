"""Daily metrics import on SQLite and PostgreSQL: Ads Manager exports, re-imports, corrections, bad rows.

Given an Ads Manager style export of 2,000 ads x 30 days, when it is imported, imported again and then
imported with one corrected day, then the first run inserts every day, the second changes nothing and the
third replaces exactly that day; a file with three bad rows is refused with the three line numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from geminivideo import procs
from geminivideo.db.models import Ad, AdDailyMetric
from geminivideo.db.session import session_scope
from geminivideo.ml.platforms.metrics_import import import_metrics_file, import_records
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*

HEADER = ("Reporting starts,Reporting ends,Campaign name,Ad name,Ad ID,Day,Impressions,Reach,Frequency,"
          "Link clicks,Amount spent (USD),Results")
START = date(2026, 5, 1)


def ads_manager_csv(path: Path, tenant: str, n_ads: int, days: int = 30, *, correct: tuple[int, int] | None = None,
                    bad_lines: tuple[int, ...] = ()) -> Path:
    """Rows ordered by ad then day (line = 2 + ad * days + day); ``correct`` = (ad, day) gets other numbers."""
    lines = [HEADER]
    for ad in range(n_ads):
        for day in range(days):
            d = (START + timedelta(days=day)).isoformat()
            imps, clicks = 1000 + ad % 97 * 10 + day, 10 + (ad + day) % 13
            if correct == (ad, day):
                imps, clicks = imps + 500, clicks + 7
            results = "" if day % 5 == 0 else str(day % 3)  # Ads Manager leaves Results empty when zero
            row = (f'{d},{d},Summer sale,"Ad {ad}, video",{tenant}-{ad:05d},{d},"{imps:,}",{imps - 100},1.11,'
                   f"{clicks},{imps * 0.012:.2f},{results}")
            lines.append(row)
    for line in bad_lines:  # header is line 1
        cells = lines[line - 1].split(",")
        cells[-2] = "twelve"  # spend
        lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def day_rows(tenant: str) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(AdDailyMetric).join(Ad).where(
            Ad.tenant_id == tenant)) or 0)


def test_ads_manager_export_imports_reimports_unchanged_and_takes_a_correction(tenant: str, tmp_path: Path) -> None:
    path = ads_manager_csv(tmp_path / "export.csv", tenant, 2000)
    seen: list[tuple[int, int]] = []
    first = import_metrics_file(path, tenant, progress=lambda done, total: seen.append((done, total)))
    assert (first.status, first.rows_imported, first.inserted, first.ads_created) == ("imported", 60_000, 60_000, 2000)
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size, "the progress reaches the file's size"
    assert day_rows(tenant) == 60_000

    again = import_metrics_file(path, tenant)
    assert (again.inserted, again.updated, again.unchanged, again.ads_created) == (0, 0, 60_000, 0)

    corrected = import_metrics_file(ads_manager_csv(tmp_path / "late.csv", tenant, 2000, correct=(7, 29)), tenant)
    assert (corrected.inserted, corrected.updated, corrected.unchanged) == (0, 1, 59_999)
    with session_scope() as session:
        row = session.scalars(select(AdDailyMetric).where(
            AdDailyMetric.ad_id == f"{tenant}-00007", AdDailyMetric.day == START + timedelta(days=29))).one()
        ad = session.get(Ad, f"{tenant}-00007")
    assert (row.impressions, row.clicks, row.reach) == (1599, 10 + 36 % 13 + 7, 1499)
    assert row.conversions == 29 % 3 and row.spend == pytest.approx(1599 * 0.012, abs=0.01)
    assert ad is not None and (ad.name, ad.campaign_id, ad.tenant_id) == ("Ad 7, video", "Summer sale", tenant)
    assert day_rows(tenant) == 60_000


def test_a_file_with_three_bad_rows_is_refused_with_their_lines(tenant: str, tmp_path: Path) -> None:
    path = ads_manager_csv(tmp_path / "bad.csv", tenant, 20, bad_lines=(5, 77, 301))
    refused = import_metrics_file(path, tenant)
    assert refused.status == "refused" and [e.line for e in refused.errors] == [5, 77, 301]
    assert all("spend = 'twelve' is not a number" in e.reason for e in refused.errors)
    assert day_rows(tenant) == 0, "nothing imported"
    with session_scope() as session:
        assert session.get(Ad, f"{tenant}-00000") is None, "no ad created either"

    skipped = import_metrics_file(path, tenant, skip_bad_rows=True)
    assert (skipped.status, skipped.rows_imported, skipped.skipped) == ("imported", 597, 3)
    assert [e.line for e in skipped.errors] == [5, 77, 301] and day_rows(tenant) == 597


def test_project_columns_jsonl_duplicates_and_foreign_ads(tenant: str, tmp_path: Path) -> None:
    other = import_records([{"ad_id": f"{tenant}-theirs", "date": "2026-05-01", "impressions": 10, "clicks": 1,
                             "spend": 1.0}], tenant + "-other")
    assert other.status == "imported"
    lines = [
        {"ad_id": f"{tenant}-a", "campaign_id": "c1", "date": "2026-05-01", "impressions": 100, "reach": 90,
         "clicks": 5, "spend": 2.5, "conversions": 1, "budget": 10},
        {"ad_id": f"{tenant}-a", "campaign_id": "c1", "date": "2026-05-01", "impressions": 101, "clicks": 5,
         "spend": 2.5},
        {"ad_id": f"{tenant}-theirs", "date": "2026-05-02", "impressions": 10, "clicks": 1, "spend": 1.0},
        {"ad_id": f"{tenant}-b", "date": "2026-05-01", "impressions": 10, "clicks": 11, "spend": 1.0},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    report = import_metrics_file(path, tenant)
    reasons = {e.line: e.reason for e in report.errors}
    assert report.status == "refused" and sorted(reasons) == [2, 3, 4, 5]
    assert "already on line 1" in reasons[2] and "belongs to tenant" in reasons[3]
    assert "clicks (11) exceed impressions (10)" in reasons[4] and "not valid JSON" in reasons[5]
    kept = import_metrics_file(path, tenant, skip_bad_rows=True)
    assert (kept.rows_imported, kept.ads_created) == (1, 1)
    with session_scope() as session:
        ad = session.get(Ad, f"{tenant}-a")
        assert ad is not None and ad.daily_budget == 10 and ad.campaign_id == "c1"


def test_cli_and_api_import(tenant: str, tmp_path: Path, test_env: HarnessEnv, database_url: str) -> None:
    env = test_env.process_env(DATABASE_URL=database_url, API_KEYS="")
    bad = ads_manager_csv(tmp_path / "bad.csv", tenant, 5, bad_lines=(3, 9, 12))
    cli = [sys.executable, "-m", "geminivideo.cli", "metrics", "import", str(bad), "--tenant", tenant]
    refused = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert all(f"line {n}:" in refused.stderr for n in (3, 9, 12)) and "refused: 3 bad row(s)" in refused.stdout
    done = subprocess.run([*cli, "--skip-bad-rows"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "147 rows for 5 ads (5 new)" in done.stdout, done.stdout + done.stderr

    api, base = procs.start_api(env, tmp_path / "api.log")
    try:
        body = "\n".join(json.dumps({"Ad ID": f"{tenant}-api", "Day": f"2026-06-{d:02d}", "Impressions": "1,000",
                                     "Link clicks": 10, "Amount spent (USD)": "12.50"}) for d in range(1, 11))
        url = f"{base}/api/ml/metrics?tenant_id={tenant}"
        answer = httpx.post(url, content=body, headers={"Content-Type": "application/x-ndjson"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["inserted"], answer.json()["ads_created"]) == (10, 1)
        refused_api = httpx.post(url, content=body + '\n{"Ad ID": "x"}', timeout=60)
        assert refused_api.status_code == 422 and refused_api.json()["detail"]["errors"][0]["line"] == 11
        too_many = "\n".join(['{"a": 1}'] * 10_001)
        assert httpx.post(url, content=too_many, timeout=60).status_code == 413
    finally:
        api.stop()


def test_the_demo_loads_its_histories_through_the_import_command(database_url: str, tmp_path: Path) -> None:
    from rich.console import Console

    from geminivideo.db.models import AdSamplerState
    from geminivideo.demo import TENANT, Demo

    demo = Demo(console=Console(file=open(os.devnull, "w")), workdir=tmp_path)  # noqa: SIM115
    for _ in range(2):  # a re-run starts from the same histories
        rows = dict(demo.step_ad_data())
        assert "2285 daily rows imported from ad-metrics.csv: 2285 rows for 80 ads (80 new)" in rows["ad histories"]
    assert (tmp_path / "ad-metrics.csv").is_file()
    with session_scope() as session:
        ads = session.scalars(select(Ad.id).where(Ad.tenant_id == TENANT)).all()
        credited = session.scalar(select(func.count()).select_from(AdSamplerState).where(AdSamplerState.ad_id.in_(ads)))
    assert len(ads) == 80 and day_rows(TENANT) == 2285 and credited == 80
