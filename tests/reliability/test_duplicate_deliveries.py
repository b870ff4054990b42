"""Given a deal opened at ``appointmentscheduled`` (10 000, attributed to an ad by fbclid), on PostgreSQL:

- when one HubSpot batch of three later stage changes (listed newest first) is delivered 3 times to each of
  two API processes at the same moment, then the events are stored once each, and whatever order the
  workers apply them in, the deal ends ``closedwon`` with 10 000 credited in total, once;
- when the same three changes arrive one per batch in reverse ``occurredAt`` order, each delivered twice,
  then the newest is applied, the two older ones are recorded ``stale`` (not applied over it), and the
  deal and the ad end with the same totals.

The same batch delivered 3 times concurrently to *one* API is tests/integration/webhooks/test_webhook_e2e.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from geminivideo.ml.webhooks.revenue import HUBSPOT_DEFAULT
from tests.integration.webhooks.support import WEBHOOK_PATH, signed_v3
from tests.reliability.conftest import MakeDeployment
from tests.reliability.hubspot_stack import WebhookStack, unique

pytestmark = [pytest.mark.reliability]

STAGES = ("qualifiedtobuy", "presentationscheduled", "closedwon")  # 0.4, 0.6, 1.0 of 10 000


def hs_event(deal: str, portal: int, at_ms: int, stage: str, attempt: int = 0) -> dict[str, Any]:
    return {"eventId": 7, "subscriptionId": 10, "portalId": portal, "appId": 5, "occurredAt": at_ms,
            "subscriptionType": "deal.propertyChange", "attemptNumber": attempt, "objectId": int(deal),
            "propertyName": "dealstage", "propertyValue": stage, "changeSource": "CRM"}


def deliver_at_once(bases: list[str], batch: list[dict[str, Any]], per_api: int) -> list[httpx.Response]:
    """Every API gets ``per_api`` deliveries of ``batch``, all released together (freshly signed each)."""
    jobs = [(base, attempt) for base in bases for attempt in range(per_api)]
    barrier = threading.Barrier(len(jobs))
    responses: list[httpx.Response] = []

    def deliver(base: str, attempt: int) -> None:
        body = json.dumps([{**event, "attemptNumber": attempt} for event in batch]).encode()
        url = base + WEBHOOK_PATH
        headers = signed_v3(url, body)
        barrier.wait()
        responses.append(httpx.post(url, content=body, headers=headers, timeout=60))

    threads = [threading.Thread(target=deliver, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return responses


@pytest.fixture
def stack(deployment: MakeDeployment, pg_database: str) -> WebhookStack:
    dep = deployment(DATABASE_URL=pg_database)
    stack = WebhookStack(dep)
    stack.start_api("api-a")
    stack.start_api("api-b")
    stack.worker("ml", concurrency=2)
    return stack


def _open_deal(stack: WebhookStack) -> tuple[str, str, str, int, datetime]:
    base = stack.apis[0][1]
    tenant, ad = stack.make_ad()
    portal = uuid.uuid4().int % 10**8
    pipeline = {**HUBSPOT_DEFAULT.model_dump(mode="json", exclude_none=True), "portal_id": portal}
    assert httpx.put(f"{base}/api/webhooks/pipelines/{tenant}", json=pipeline, timeout=30).status_code == 200
    fbclid, t0 = unique("fb"), datetime.now(UTC) - timedelta(hours=5)
    stack.track_click(base, ad, tenant, fbclid, (t0 - timedelta(hours=1)).isoformat())
    deal = str(uuid.uuid4().int % 10**12)
    opened = stack.post(base, {"dealId": deal, "stageTo": "appointmentscheduled", "dealValue": 10000,
                               "tenantId": tenant, "fbclid": fbclid, "occurredAt": t0.isoformat()})
    assert opened.status_code == 200, opened.text
    stack.wait_final([opened.json()["events"][0]["key"]])
    return tenant, ad, deal, portal, t0


def _changes(deal: str, portal: int, t0: datetime) -> list[dict[str, Any]]:
    """The three stage changes, one hour apart, newest first."""
    return [hs_event(deal, portal, int((t0 + timedelta(hours=i + 1)).timestamp() * 1000), stage)
            for i, stage in reversed(list(enumerate(STAGES)))]


def _check_totals(stack: WebhookStack, tenant: str, deal: str, ad: str) -> list[str]:
    books = stack.books(tenant, deal, ad)
    assert books.stage == "closedwon"
    assert sum(credit for _, credit in books.conversions) == pytest.approx(10000)
    assert books.credited_value == pytest.approx(10000)
    assert books.sampler_pipeline_value == pytest.approx(10000)
    return [stage or "" for stage, _ in books.conversions]


def test_identical_batches_on_two_apis_at_once_apply_once(stack: WebhookStack) -> None:
    tenant, ad, deal, portal, t0 = _open_deal(stack)
    responses = deliver_at_once([base for _, base in stack.apis], _changes(deal, portal, t0), per_api=3)
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    reports = [r.json() for r in responses]
    assert sum(r["stored"] for r in reports) == 3 and sum(r["duplicates"] for r in reports) == 15
    keys = [e["key"] for e in reports[0]["events"]]
    final = stack.wait_final(keys)
    assert {e["status"] for e in final.values()} <= {"processed", "stale"}
    assert max(e["deliveries"] for e in final.values()) == 6 and min(e["deliveries"] for e in final.values()) == 6
    stages = _check_totals(stack, tenant, deal, ad)
    print(f"6 concurrent deliveries of one 3-event batch on 2 APIs: 3 stored, conversions {stages}, "
          "10000 credited once")


def test_reverse_order_changes_are_not_applied_over_newer_ones(stack: WebhookStack) -> None:
    tenant, ad, deal, portal, t0 = _open_deal(stack)
    keys: list[str] = []
    for event in _changes(deal, portal, t0):  # closedwon first, then the older two
        for base in (base for _, base in stack.apis):
            response = stack.post(base, [event])
            assert response.status_code == 200, response.text
        keys.append(response.json()["events"][0]["key"])
        stack.wait_final([keys[-1]])
    statuses = [stack.event(key)["status"] for key in keys]  # type: ignore[index]
    assert statuses == ["processed", "stale", "stale"], statuses
    stages = _check_totals(stack, tenant, deal, ad)
    assert stages == ["appointmentscheduled", "closedwon"]
    print("3 changes in reverse occurredAt order, each delivered twice: newest applied, 2 stale, "
          "10000 credited once")
