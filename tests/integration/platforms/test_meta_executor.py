"""Approved changes reach the Graph API stand-in, on SQLite and PostgreSQL.

Given histories imported from a CSV export, when the fatigue monitor scans them, then it flags the ads the data
made fatigued; an approved pause is applied to Meta exactly once even when the executing worker is killed in
the middle of the call and the task is redelivered; with ``META_EXECUTE=false`` nothing is sent. Budget changes
go to the ad set in minor units; Meta's refusal fails the change with Meta's message; a transient error retries.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from sqlalchemy import select

from geminivideo.contracts import FatigueScanJob
from geminivideo.db.models import Ad
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals, fatigue
from geminivideo.ml.decisions.datagen import DatasetSpec, export_metrics_csv
from geminivideo.ml.platforms import executor
from geminivideo.ml.platforms.metrics_import import import_metrics_file, import_records
from geminivideo.ml.tasks import execute_approved_changes
from tests.integration.platforms.conftest import MetaWorker, meta_env
from tests.support.env import applied
from tests.support.meta_graph import Fault, GraphState

TIMEOUT_S = 120


def wait_for_status(change_id: int, status: str, timeout_s: float = 60) -> approvals.ChangeView:
    deadline = time.monotonic() + timeout_s
    while True:
        view = approvals.show_change(change_id)
        if view.status == status or time.monotonic() > deadline:
            return view
        time.sleep(0.3)


def test_fatigue_over_imported_data_and_a_pause_applied_once_despite_a_killed_executor(
    graph: tuple[str, GraphState], meta_worker: MetaWorker, tenant: str, tmp_path: Path,
) -> None:
    _, state = graph
    dataset = export_metrics_csv(DatasetSpec(n_ads=100, days=30, seed=20260101, tenant_id=tenant), tmp_path / "m.csv")
    assert import_metrics_file(tmp_path / "m.csv", tenant).rows_imported == dataset.metric_rows

    scan = fatigue.scan_all_ads(FatigueScanJob(tenant_id=tenant))
    report = fatigue.fatigue_report(tenant_id=tenant, scan_id=scan.scan_id, limit=1000)
    assert report is not None
    critical = {r["ad_id"] for r in report["reports"] if r["severity"] == "critical"}
    expected = {ad for ad, truth in dataset.truth.items() if truth.expect_critical}
    assert critical <= expected and len(critical & expected) >= 0.9 * len(expected), (critical, expected)

    proposals = approvals.list_changes("pending_approval", tenant_id=tenant, limit=1000)
    pause = next(p for p in proposals if p.change_type == "pause")
    state.ads[pause.ad_id] = {"status": "ACTIVE", "effective_status": "ACTIVE", "adset_id": "as-1"}
    approvals.approve_change(pause.id, "ops@example.com")
    state.hold_posts = True  # the POST is applied, then its answer is held until the worker is killed

    queue, worker = meta_worker(META_EXECUTE="true")
    result = execute_approved_changes.apply_async(kwargs={"limit": 50}, queue=queue)
    assert state.held.wait(60), "the executor reached Meta"
    (child,) = psutil.Process(worker.pid).children()
    os.kill(child.pid, signal.SIGKILL)
    state.release()

    view = wait_for_status(pause.id, "executed")
    assert view.status == "executed", view
    assert state.posts_to(pause.ad_id) == [{"status": "PAUSED"}], "applied exactly once"
    assert view.result is not None and view.result["response"]["already_applied"] is True
    assert view.result["response"]["read"]["status"] == "PAUSED"
    outcome = result.get(timeout=TIMEOUT_S)
    assert outcome["executed"] == 1 and outcome["mode"] == executor.EXECUTING
    with session_scope() as session:
        assert session.get(Ad, pause.ad_id).status == "paused"  # type: ignore[union-attr]


def make_ads(tenant: str, n: int, budget: float = 100.0) -> list[str]:
    ids = [f"{tenant}-m{i}" for i in range(n)]
    rows = [{"ad_id": ad, "campaign_id": f"{tenant}-cmp", "date": "2026-05-01", "impressions": 100, "clicks": 1,
             "spend": 50.0, "budget": budget} for ad in ids]
    assert import_records(rows, tenant).ads_created == n
    return ids


def approved(ad_id: str, kind: str, value: float | None = None) -> int:
    view = approvals.propose_change(ad_id, kind, value, reason="test")
    assert view is not None
    approvals.approve_change(view.id, "ops@example.com")
    return view.id


def test_record_only_by_default_sends_nothing(
    graph: tuple[str, GraphState], meta_worker: MetaWorker, tenant: str,
) -> None:
    _, state = graph
    (ad_id,) = make_ads(tenant, 1)
    state.ads[ad_id] = {"status": "ACTIVE", "adset_id": "as-1"}
    change_id = approved(ad_id, "pause")
    queue, _ = meta_worker()  # META_EXECUTE unset: false
    outcome = execute_approved_changes.apply_async(kwargs={"limit": 50}, queue=queue).get(timeout=TIMEOUT_S)
    assert change_id in outcome["change_ids"] and outcome["mode"] == executor.RECORD_ONLY
    view = approvals.show_change(change_id)
    assert view.status == "executed" and view.result is not None
    assert view.result["response"]["mode"] == executor.RECORD_ONLY and view.result["response"]["recorded_only"]
    assert state.requests == [], "nothing was sent to Meta"


def test_budget_in_minor_units_refusals_and_transient_errors(
    graph: tuple[str, GraphState], tenant: str, database_url: str,
) -> None:
    base, state = graph
    budget_ad, refused_ad, flaky_ad, *_ = make_ads(tenant, 10)
    state.ads.update({budget_ad: {"status": "ACTIVE", "adset_id": "as-b"},
                      refused_ad: {"status": "ACTIVE", "adset_id": "as-r"},
                      flaky_ad: {"status": "ACTIVE", "adset_id": "as-f"}})
    state.adsets.update({"as-b": {"daily_budget": "10000", "account_id": "777"},
                         "as-r": {"daily_budget": "10000", "account_id": "777"}})
    state.faults += [Fault(path=refused_ad, method="POST", code=100, message="Invalid parameter", subcode=1487242),
                     Fault(path=flaky_ad, method="POST", code=2, http_status=500, message="Service temporarily "
                           "unavailable")]
    budget, refused, flaky = approved(budget_ad, "budget", 90.0), approved(refused_ad, "pause"), approved(flaky_ad,
                                                                                                          "pause")
    with applied(meta_env(base, database_url, META_EXECUTE="true")):
        factory, mode = executor.client_factory()
        first = approvals.execute_approved_changes(limit=50, client_factory=factory)
        assert (first["executed"], first["failed"], first["retry"]) == (1, 1, 1) and mode == executor.EXECUTING
        assert state.posts_to("as-b") == [{"daily_budget": "9000"}], "USD cents"
        assert approvals.show_change(budget).result["response"]["sent"] == {"daily_budget": 9000}  # type: ignore[index]
        failed = approvals.show_change(refused)
        assert failed.status == "failed" and "Meta refused the request (code 100, subcode 1487242" in str(failed.error)
        assert "Invalid parameter" in str(failed.error) and state.posts_to(refused_ad) == []
        waiting = approvals.show_change(flaky)
        assert waiting.status == "approved" and "temporarily" in str(waiting.error)
        second = approvals.execute_approved_changes(limit=50, client_factory=factory)
    assert second["executed"] == 1 and approvals.show_change(flaky).status == "executed"
    assert state.posts_to(flaky_ad) == [{"status": "PAUSED"}]
    with session_scope() as session:
        budgets = dict(session.execute(select(Ad.id, Ad.daily_budget).where(Ad.id.in_([budget_ad]))).all())
    assert budgets == {budget_ad: 90.0}
