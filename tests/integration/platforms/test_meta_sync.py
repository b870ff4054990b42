"""``sync_ad_metrics`` on real workers against the Graph API stand-in, on SQLite and PostgreSQL.

Given ad accounts whose insights span several pages, when the sync runs (cursor paging for a short range, the
async report job for a long one), then every row lands once; a rate-limit answer slows the sync without losing
rows; an expired token fails the task at once with a message that says so; a failed report job is recorded
with Meta's error fields.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from geminivideo.config import get_settings
from geminivideo.contracts import TASK_QUEUE, TaskName
from geminivideo.db.models import Ad, AdDailyMetric
from geminivideo.db.session import session_scope
from geminivideo.ml import celery_app
from geminivideo.ml.platforms import sync
from geminivideo.ml.platforms.base import PlatformAuthError
from geminivideo.ml.tasks import sync_ad_metrics
from tests.integration.platforms.conftest import MetaWorker, meta_env, recent_days
from tests.support.env import applied
from tests.support.meta_graph import Fault, GraphState, insight_rows

TIMEOUT_S = 120


def stored(tenant: str) -> dict[tuple[str, str], tuple[int, int, float, int]]:
    with session_scope() as session:
        rows = session.execute(select(AdDailyMetric.ad_id, AdDailyMetric.day, AdDailyMetric.impressions,
                                      AdDailyMetric.clicks, AdDailyMetric.spend, AdDailyMetric.conversions)
                               .join(Ad).where(Ad.tenant_id == tenant)).all()
    return {(a, d.isoformat()): (i, c, s, v) for a, d, i, c, s, v in rows}


def expected(rows: list[dict[str, object]]) -> dict[tuple[str, str], tuple[int, int, float, int]]:
    return {(str(r["ad_id"]), str(r["date_start"])): (
        int(str(r["impressions"])), int(str(r.get("inline_link_clicks", 0))), float(str(r["spend"])),
        int(r["actions"][0]["value"]))  # type: ignore[index]
        for r in rows}


def test_sync_pages_and_async_job_land_every_row_once(
    graph: tuple[str, GraphState], meta_worker: MetaWorker, tenant: str, database_url: str,
) -> None:
    _, state = graph
    state.rows["act_1001"] = insight_rows("act_1001", ads=30, days=recent_days(20))
    state.page_size = 30
    queue, _ = meta_worker(META_AD_ACCOUNTS=f"act_1001:{tenant}", META_ASYNC_AFTER_DAYS="7")

    short = sync_ad_metrics.apply_async(kwargs={"days": 3}, queue=queue).get(timeout=TIMEOUT_S)
    (account,) = short["accounts"]
    assert (account["status"], account["pages"], account["rows"], account["inserted"]) == ("synced", 3, 90, 90)
    insights_gets = [p for m, path, p in state.requests if m == "GET" and path == "act_1001/insights"]
    assert [p.get("after") for p in insights_gets] == [None, "cursor-30", "cursor-60"], "cursor paging"
    assert insights_gets[0]["level"] == "ad" and insights_gets[0]["time_increment"] == "1"

    long = sync_ad_metrics.apply_async(kwargs={"days": 20}, queue=queue).get(timeout=TIMEOUT_S)
    (account,) = long["accounts"]
    assert (account["status"], account["rows"], account["inserted"], account["unchanged"]) == ("synced", 600, 510, 90)
    (run_id,) = state.reports
    polls = [path for m, path, _ in state.requests if path == run_id]
    assert len(polls) == 3, "Job Started -> Job Running -> Job Completed"
    assert stored(tenant) == expected(state.rows["act_1001"]), "every row once, with Meta's numbers"


def test_throttling_slows_the_sync_without_losing_rows(
    graph: tuple[str, GraphState], meta_worker: MetaWorker, tenant: str,
) -> None:
    _, state = graph
    state.rows["act_2002"] = insight_rows("act_2002", ads=20, days=recent_days(3))
    state.page_size = 20
    state.usage_pct = 80.0  # every answer says the account is at 80 % of its limit
    state.faults.append(Fault(path="act_2002/insights", code=17, message="User request limit reached",
                              subcode=2446079, times=2))
    queue, _ = meta_worker(META_AD_ACCOUNTS=f"act_2002:{tenant}")
    result = sync_ad_metrics.apply_async(kwargs={"days": 3}, queue=queue).get(timeout=TIMEOUT_S)
    (account,) = result["accounts"]
    assert (account["status"], account["rows"]) == ("synced", 60)
    assert result["pacing"]["throttled"] == 2 and result["pacing"]["max_usage_pct"] == 80.0
    assert result["pacing"]["slept_s"] >= 2 * 0.4, "waited on each rate-limit answer, and paced the others"
    assert stored(tenant) == expected(state.rows["act_2002"])


def test_expired_token_fails_permanently_saying_so(
    graph: tuple[str, GraphState], meta_worker: MetaWorker, tenant: str,
) -> None:
    _, state = graph
    state.expired_tokens.add("test-token")
    queue, _ = meta_worker(META_AD_ACCOUNTS=f"act_3003:{tenant}")
    result = sync_ad_metrics.apply_async(kwargs={"days": 3}, queue=queue)
    with pytest.raises(PlatformAuthError, match=r"token expired or invalid \(code 190, subcode 463.*renew META_ACCESS"):
        result.get(timeout=TIMEOUT_S)
    assert len(state.requests) == 1, "not retried"


def test_failed_report_job_is_recorded_with_metas_fields_and_rescheduled(
    graph: tuple[str, GraphState], tenant: str, database_url: str,
) -> None:
    base, state = graph
    state.rows["act_4004"] = insight_rows("act_4004", ads=2, days=recent_days(10))
    state.job_outcome = "Job Failed"
    with applied(meta_env(base, database_url, META_ASYNC_AFTER_DAYS="5")):
        result = sync.sync_ad_metrics(accounts=[f"act_4004:{tenant}"], days=10)
    (account,) = result["accounts"]
    assert account["status"] == "retry" and result["reschedule"] == [f"act_4004:{tenant}"]
    assert "'Job Failed'" in account["error"] and '"error_code": 2601' in account["error"]
    assert "Reduce the date range" in account["error"]


def test_a_long_rate_limit_reschedules_instead_of_waiting(
    graph: tuple[str, GraphState], tenant: str, database_url: str,
) -> None:
    base, state = graph
    state.rows["act_5005"] = insight_rows("act_5005", ads=2, days=recent_days(3))
    state.faults.append(Fault(path="act_5005/insights", code=80000, message="too many calls", regain_minutes=5))
    with applied(meta_env(base, database_url)):
        result = sync.sync_ad_metrics(accounts=[f"act_5005:{tenant}"], days=3)
    assert result["accounts"][0]["status"] == "rate_limited" and result["wait_s"] == 300
    assert result["reschedule"] == [f"act_5005:{tenant}"]


def test_the_hourly_beat_entry_routes_to_a_registered_task() -> None:
    entry = celery_app.beat_schedule(get_settings())["sync-ad-metrics-hourly"]
    assert entry["task"] == TaskName.SYNC_AD_METRICS and entry["schedule"].minute == {15}
    assert str(TaskName.SYNC_AD_METRICS) in celery_app.app.tasks
    assert celery_app.app.conf.task_routes[str(TaskName.SYNC_AD_METRICS)] == {
        "queue": str(TASK_QUEUE[TaskName.SYNC_AD_METRICS])}


def test_no_accounts_is_a_quiet_no_op(database_url: str) -> None:
    with applied({"META_AD_ACCOUNTS": ""}):
        assert sync.sync_ad_metrics()["note"].startswith("META_AD_ACCOUNTS is not set")
