"""Webhook and approval series: counted where they happen (API receives and stores, the ML worker applies).

Given a private deployment with the API and one ML worker on ``hubspot-webhook-events`` (its host exporter on
WORKER_METRICS_PORT),
when two good deal events, one event naming an unknown stage and a re-delivery of the first are posted,
then the API counts 4 received and 3 stored, the worker 2 applied and 1 failed with 2 lag observations, and the
scrape-time gauges show 2 processed, 1 failed, nothing unapplied and the approval states.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from geminivideo import procs
from geminivideo.contracts import QueueName
from geminivideo.ml.webhooks.signature import v3_signature
from tests.integration.telemetry.support import TOKEN, deployment
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.timeout(240)
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Hooks:
    api: str
    worker_metrics: str
    secret: str


@pytest.fixture(scope="module")
def hooks(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    root = tmp_path_factory.mktemp("telemetry-webhooks")
    port = procs.free_port()
    with deployment(test_env, root, WORKER_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(root / "m")) as dep:
        api_env = {k: v for k, v in dep.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        api_proc, api = procs.start_api(api_env, dep.log("api.log"), ready_path="/health", require_ok=False)
        worker = procs.start_worker("ml", queues=[str(QueueName.HUBSPOT_WEBHOOK_EVENTS)], concurrency=1,
                                    hostname=f"hooks-{uuid.uuid4().hex[:6]}@localhost", env=dep.env,
                                    log_path=dep.log("worker.log"))
        try:
            yield Hooks(api, f"http://127.0.0.1:{port}/metrics", test_env.values["HUBSPOT_CLIENT_SECRET"])
        finally:
            worker.stop()
            api_proc.stop()


def post(hooks: Hooks, event: dict[str, Any]) -> str:
    body = json.dumps(event).encode()
    url = f"{hooks.api}/api/webhooks/hubspot"
    stamp = str(int(time.time() * 1000))
    headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
               "X-HubSpot-Signature-v3": v3_signature(hooks.secret, "POST", url, body, stamp)}
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["events"][0]["key"])


def final_status(hooks: Hooks, key: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = httpx.get(f"{hooks.api}/api/webhooks/hubspot/events/{key}", timeout=10)
        if found.status_code == 200 and found.json()["status"] not in ("pending", "enqueued"):
            return str(found.json()["status"])
        time.sleep(0.3)
    raise AssertionError(f"event {key} not final within {timeout_s:.0f} s")


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_webhook_events_are_counted_where_they_happen(hooks: Hooks) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    good = [{"dealId": f"d-{uuid.uuid4().hex[:8]}", "stageTo": "qualifiedtobuy", "dealValue": 100, "tenantId": tenant}
            for _ in range(2)]
    keys = [post(hooks, event) for event in good]
    keys.append(post(hooks, {"dealId": "d-bad", "stageTo": "signed-contract", "tenantId": tenant}))
    assert post(hooks, good[0]) == keys[0]  # a re-delivery: received again, not stored again
    assert [final_status(hooks, key) for key in keys] == ["processed", "processed", "failed"]

    deadline = time.monotonic() + 10  # the worker counts right after its commit; the API may answer first
    while samples(hooks.worker_metrics).get(("geminivideo_webhook_events_failed_total", ()), 0) < 1:
        assert time.monotonic() < deadline, "the worker never counted the failed event"
        time.sleep(0.3)
    worker = samples(hooks.worker_metrics)
    assert worker[("geminivideo_webhook_events_applied_total", (("outcome", "processed"),))] == 2
    assert worker[("geminivideo_webhook_events_failed_total", ())] == 1
    assert worker[("geminivideo_webhook_apply_lag_seconds_count", ())] == 2
    assert 0 < worker[("geminivideo_webhook_apply_lag_seconds_sum", ())] < 60

    api = samples(f"{hooks.api}/metrics")
    assert api[("geminivideo_webhook_events_received_total", (("source", "hubspot"),))] == 4
    assert api[("geminivideo_webhook_events_stored_total", (("source", "hubspot"),))] == 3
    assert api[("geminivideo_webhook_events", (("status", "processed"),))] == 2
    assert api[("geminivideo_webhook_events", (("status", "failed"),))] == 1
    assert api[("geminivideo_webhook_oldest_unapplied_age_seconds", ())] == 0
    assert api[("geminivideo_approvals", (("status", "pending_approval"),))] == 0
    assert api[("geminivideo_scrape_errors", (("source", "database"),))] == 0
    assert api[("geminivideo_scrape_errors", (("source", "broker"),))] == 0
