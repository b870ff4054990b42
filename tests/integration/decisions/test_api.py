"""The sampler, fatigue and approval endpoints over HTTP (in-process ASGI app) against SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from geminivideo import procs
from geminivideo.api.app import create_app
from geminivideo.contracts import FatigueScanJob
from geminivideo.ml.decisions import fatigue
from geminivideo.ml.decisions.datagen import DatasetSpec, generate_ad_histories
from geminivideo.procs import wait_until
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*
from tests.support.env import applied


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def test_allocate_explicit_states_conserves_the_budget_and_refuses_bad_input(client: TestClient) -> None:
    ads = [{"ad_id": "a", "impressions": 40_000, "clicks": 800, "spend": 500, "pipeline_value": 2500,
            "age_hours": 300, "current_budget": 100},
           {"ad_id": "b", "impressions": 40_000, "clicks": 400, "spend": 500, "pipeline_value": 200,
            "age_hours": 300, "current_budget": 100},
           {"ad_id": "new"}]
    reply = client.post("/api/ml/battle-hardened/allocate", json={"ads": ads, "total_budget": 300, "seed": 7})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    recs = {r["ad_id"]: r for r in body["recommendations"]}
    assert body["allocated"] == 300 and sum(r["recommended_budget"] for r in recs.values()) == pytest.approx(300)
    assert recs["a"]["recommended_budget"] > recs["b"]["recommended_budget"]
    assert recs["b"]["decision"] == "kill" and recs["a"]["decision"] == "scale"
    assert recs["new"]["recommended_budget"] > 0 and recs["new"]["decision"] == "maintain"
    assert all(r["reasons"] and r["metrics"] for r in recs.values())
    bad = client.post("/api/ml/battle-hardened/allocate", json={"ads": ads, "ad_ids": ["a"], "total_budget": 1})
    assert bad.status_code == 422 and "exactly one of" in bad.text
    negative = client.post("/api/ml/battle-hardened/allocate", json={"ads": ads, "total_budget": -5})
    assert negative.status_code == 422 and "total_budget" in negative.text
    unknown = client.post("/api/ml/battle-hardened/select", json={"ad_ids": ["no-such-ad"]})
    assert unknown.status_code == 422 and "no-such-ad" in unknown.text


def test_sampler_reads_the_database_and_its_proposals_go_through_approval(client: TestClient, tenant: str) -> None:
    dataset = generate_ad_histories(DatasetSpec(n_ads=40, days=20, seed=9, tenant_id=tenant))
    fatigue.scan_all_ads(FatigueScanJob(tenant_id=tenant, create_proposals=False))
    select = client.post("/api/ml/battle-hardened/select", json={"ad_ids": dataset.ad_ids[:10], "seed": 1})
    assert select.status_code == 200 and select.json()["selected_ad_id"] in dataset.ad_ids[:10]
    assert any(a["metrics"]["fatigue_status"] for a in select.json()["ads"]), "fatigue verdicts are read"

    reply = client.post("/api/ml/battle-hardened/allocate", json={
        "tenant_id": tenant, "total_budget": 2000, "seed": 3, "submit_for_approval": True})
    assert reply.status_code == 200, reply.text
    approval = reply.json()["approval"]
    assert approval["proposed"] > 0

    listed = client.get("/api/ml/approvals", params={"tenant_id": tenant}).json()
    assert listed["count"] == approval["proposed"]
    change = listed["changes"][0]
    assert change["source"] == "sampler" and change["status"] == "pending_approval"
    assert client.get(f"/api/ml/approvals/{change['id']}").json()["id"] == change["id"]
    decision = {"note": "ok"}
    approved = client.post(f"/api/ml/approvals/{change['id']}/approve", json=decision)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == "local"  # the caller (API_AUTH=off: loopback "local"), not the body
    again = client.post(f"/api/ml/approvals/{change['id']}/reject", json=decision)
    assert again.status_code == 409 and "only pending_approval" in again.text
    assert client.post("/api/ml/approvals/999999999/approve", json=decision).status_code == 404
    forged = {"decided_by": "mallory", "note": "x"}
    assert client.post(f"/api/ml/approvals/{change['id']}/approve", json=forged).status_code == 422
    assert client.get("/api/ml/approvals", params={"status": "bogus"}).status_code == 422


def test_fatigue_reports_and_manual_proposals(client: TestClient, tenant: str) -> None:
    dataset = generate_ad_histories(DatasetSpec(n_ads=30, days=30, seed=4, tenant_id=tenant))
    scan = fatigue.scan_all_ads(FatigueScanJob(tenant_id=tenant))
    report = client.get("/api/ml/fatigue/report", params={"tenant_id": tenant, "limit": 100})
    assert report.status_code == 200
    body = report.json()
    assert body["scan"]["scan_id"] == scan.scan_id and len(body["reports"]) == 30
    critical = client.get("/api/ml/fatigue/report",
                          params={"tenant_id": tenant, "severity": "critical", "scan_id": scan.scan_id}).json()
    assert len(critical["reports"]) == scan.critical and all(r["evidence"] for r in critical["reports"])
    one = client.get(f"/api/ml/fatigue/ads/{dataset.ad_ids[0]}").json()
    assert one["reports"][0]["ad_id"] == dataset.ad_ids[0]
    assert client.get("/api/ml/fatigue/ads/no-such-ad").status_code == 404
    bad = client.put(f"/api/ml/fatigue/thresholds/{tenant}", json={"frequency_saturated": -1})
    assert bad.status_code == 422 and "frequency_saturated" in bad.text
    assert client.put(f"/api/ml/fatigue/thresholds/{tenant}", json={"frequency_saturated": 5}).status_code == 200

    healthy = next(r["ad_id"] for r in body["reports"] if r["severity"] != "critical")
    manual = {"ad_id": healthy, "change_type": "budget", "requested_value": 42.5, "reason": "promo week"}
    created = client.post("/api/ml/approvals", json=manual)
    assert created.status_code == 201 and created.json()["source"] == "manual"
    assert created.json()["requested_value"] == 42.5
    assert client.post("/api/ml/approvals", json=manual).status_code == 409


def test_a_scan_requested_over_http_runs_on_a_worker_and_its_report_is_served(
    ml_worker: procs.ManagedProcess, test_env: HarnessEnv,
) -> None:
    # The session ML worker consumes fatigue-monitoring on the session's SQLite database: use that one here.
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    with applied({"DATABASE_URL": test_env.sqlite_url}), TestClient(create_app()) as client:
        generate_ad_histories(DatasetSpec(n_ads=30, days=20, seed=11, tenant_id=tenant))
        reply = client.post("/api/ml/fatigue/scan", json={"tenant_id": tenant, "create_proposals": False})
        assert reply.status_code == 202, reply.text
        status_url = reply.json()["status_url"]

        def finished() -> bool:
            return bool(client.get(status_url).json()["status"] in ("completed", "failed"))

        wait_until(finished, 120, interval_s=0.5, what="the scan task to finish on the worker")
        state = client.get(status_url).json()
        assert state["status"] == "completed", state
        scan = state["result"]
        assert scan["ads_scanned"] == 30 and scan["proposals_created"] == 0

        report = client.get("/api/ml/fatigue/report", params={"tenant_id": tenant, "scan_id": scan["scan_id"]})
        assert report.status_code == 200, report.text
        assert len(report.json()["reports"]) == 30
