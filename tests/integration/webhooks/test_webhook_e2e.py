"""End to end on SQLite and PostgreSQL: real API (uvicorn), real ML worker, real Redis, signed HubSpot batches.

Each database gets its own Redis database number for the broker, so only this module's worker takes
its tasks (a session-wide ML worker on the default database number must not process them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from geminivideo import procs
from geminivideo.contracts import QueueName
from geminivideo.db.models.webhooks import WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.ml.webhooks.revenue import HUBSPOT_DEFAULT
from geminivideo.ml.webhooks.signature import v1_signature
from tests.integration.webhooks.support import (
    SECRET,
    WEBHOOK_PATH,
    conversions,
    make_ad,
    post_signed,
    sampler,
    signed_v3,
    start_api,
    unique,
    wait_final,
)
from tests.support import env as test_support

REDIS_DB = {"sqlite": 11, "postgresql": 12}
pytestmark = pytest.mark.slow  # about 40 s: a worker and an API per database


@dataclass
class Stack:
    env: dict[str, str]
    client: httpx.Client
    database_url: str
    worker: procs.ManagedProcess
    api: procs.ManagedProcess
    logs: Path

    def diagnostics(self) -> str:
        return f"--- worker ---\n{self.worker.log_tail(40)}\n--- api ---\n{self.api.log_tail(20)}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, test_env: test_support.TestEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database_url = test_env.sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    redis_url = test_env.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB[request.param]}"
    env = test_env.process_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    logs = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    hostname = f"ml-webhooks-{uuid.uuid4().hex[:6]}@localhost"
    worker = procs.start_worker("ml", queues=[str(QueueName.HUBSPOT_WEBHOOK_EVENTS)], hostname=hostname, env=env,
                                log_path=logs / "worker.log", concurrency=2)
    try:
        api, base = start_api(env, logs / "api.log")
    except BaseException:
        worker.stop()
        raise
    client = httpx.Client(base_url=base, timeout=30)
    with test_support.applied({"DATABASE_URL": database_url, "REDIS_URL": redis_url}):
        yield Stack(env, client, database_url, worker, api, logs)
    client.close()
    api.stop()
    worker.stop()


def hs_event(deal_id: str, portal: int, at_ms: int, **fields: Any) -> dict[str, Any]:
    event = {"eventId": 1, "subscriptionId": 10, "portalId": portal, "appId": 5, "occurredAt": at_ms,
             "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": int(deal_id),
             "propertyName": "dealstage", "propertyValue": "contractsent", "changeSource": "CRM"}
    event.update(fields)
    return event


def deliver_concurrently(client: httpx.Client, batch: list[dict[str, Any]], times: int) -> list[httpx.Response]:
    """HubSpot retrying the same batch: each delivery freshly signed, with a higher attemptNumber."""
    responses: list[httpx.Response] = []
    barrier = threading.Barrier(times)
    url = str(client.base_url).rstrip("/") + WEBHOOK_PATH

    def deliver(attempt: int) -> None:
        body = json.dumps([{**event, "attemptNumber": attempt} for event in batch]).encode()
        barrier.wait()
        responses.append(client.post(WEBHOOK_PATH, content=body, headers=signed_v3(url, body)))

    threads = [threading.Thread(target=deliver, args=(attempt,)) for attempt in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def run_client_code(stack: Stack, code: str) -> Any:
    """Run ``code`` in a fresh Python process bound to this stack's broker and database, like a user would."""
    done = subprocess.run([sys.executable, "-c", code], env=stack.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{stack.diagnostics()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_signed_batch_delivered_three_times_credits_once(stack: Stack) -> None:
    """Given an ad clicked (fbclid) and a deal opened with that fbclid, when HubSpot delivers a mixed
    batch three times at once and then closes the deal lost, then each change credits once and the
    deal's credits sum to zero on the deal and on the ad."""
    tenant, ad = make_ad()
    portal = int(uuid.uuid4().int % 10**8)
    pipeline = {**HUBSPOT_DEFAULT.model_dump(mode="json", exclude_none=True), "portal_id": portal}
    assert stack.client.put(f"/api/webhooks/pipelines/{tenant}", json=pipeline).status_code == 200
    fbclid = unique("fb")
    t0 = datetime.now(UTC) - timedelta(hours=3)
    click = stack.client.post("/api/ml/attribution/track-click",
                              json={"ad_id": ad, "fbclid": fbclid, "tenant_id": tenant, "utm_source": "facebook",
                                    "timestamp": (t0 - timedelta(hours=1)).isoformat()})
    assert click.status_code == 201, click.text
    deal = str(uuid.uuid4().int % 10**12)
    opened = post_signed(stack.client, {"dealId": deal, "stageTo": "appointmentscheduled", "dealValue": 10000,
                                        "tenantId": tenant, "fbclid": fbclid, "occurredAt": t0.isoformat()})
    assert opened.status_code == 200, opened.text
    first = wait_final(stack.client, opened.json()["events"][0]["key"])
    assert first["status"] == "processed", stack.diagnostics()
    assert first["result"]["ad_id"] == ad and first["result"]["attribution"]["layer"] == "click_id"

    at_ms = int((t0 + timedelta(hours=1)).timestamp() * 1000)
    batch = [
        hs_event(deal, portal, at_ms),
        hs_event(deal, portal, at_ms, subscriptionType="contact.creation", objectId=1, propertyName=None,
                 propertyValue=None),
        hs_event(deal, portal, at_ms, propertyName="amount", propertyValue="12000"),
    ]
    responses = deliver_concurrently(stack.client, batch, times=3)
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    reports = [r.json() for r in responses]
    assert sum(r["stored"] for r in reports) == 3 and sum(r["duplicates"] for r in reports) == 6
    keys = {e["type"] + e["key"]: e["key"] for e in reports[0]["events"]}
    finals = {k: wait_final(stack.client, key)["status"] for k, key in keys.items()}
    assert sorted(finals.values()) == ["ignored", "ignored", "processed"], stack.diagnostics()

    lost_at = at_ms + 3_600_000
    body = json.dumps([hs_event(deal, portal, lost_at, propertyValue="closedlost")]).encode()
    legacy = stack.client.post(WEBHOOK_PATH, content=body, headers={"X-HubSpot-Signature": v1_signature(SECRET, body),
                                                                    "X-HubSpot-Signature-Version": "v1"})
    assert legacy.status_code == 200 and legacy.json()["signature"] == "v1"
    assert wait_final(stack.client, legacy.json()["events"][0]["key"])["status"] == "processed"

    credits = [(c.stage_to, c.credit) for c in conversions(deal)]
    assert credits == [("appointmentscheduled", 2000), ("contractsent", 7000), ("closedlost", -9000)]
    assert sampler(ad) == {"pipeline_value": 0, "cash_revenue": 0, "conversions": 0, "feedback_count": 3}


def test_seed_example_through_delay_and_get(stack: Stack) -> None:
    deal = unique("deal")
    code = (
        "import json\n"
        "from geminivideo.ml.tasks import process_hubspot_webhook\n"
        f"r = process_hubspot_webhook.delay({{'dealId': '{deal}', 'stageTo': 'closedwon', 'dealValue': 10000, "
        "'tenantId': 'tenant_1'}).get(timeout=60)\n"
        "print(json.dumps(r))\n"
    )
    result = run_client_code(stack, code)
    assert {"status", "synthetic_revenue", "attribution", "ad_id"} <= set(result)
    assert result["status"] == "processed" and result["synthetic_revenue"] == 10000 and result["ad_id"] is None
    assert [c.credit for c in conversions(deal)] == [10000]


def test_invalid_change_fails_once_and_is_listed(stack: Stack) -> None:
    deal = unique("deal")
    response = post_signed(stack.client, {"dealId": deal, "stageTo": "signed-contract", "tenantId": unique("t")})
    assert response.status_code == 200
    key = response.json()["events"][0]["key"]
    event = wait_final(stack.client, key)
    assert event["status"] == "failed" and "'signed-contract' is not a stage" in event["error"]
    assert event["attempts"] == 1  # permanent: not retried
    failed = stack.client.get(WEBHOOK_PATH + "/events", params={"status": "failed", "limit": 500}).json()
    assert key in {e["key"] for e in failed["events"]}


def test_events_stored_while_the_broker_is_down_are_swept_later(stack: Stack) -> None:
    dead_broker = f"redis://127.0.0.1:{procs.free_port()}/0"
    env = {**stack.env, "CELERY_BROKER_URL": dead_broker}
    api, base = start_api(env, stack.logs / f"api-dead-broker-{uuid.uuid4().hex[:6]}.log")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deal = unique("deal")
            response = post_signed(client, {"dealId": deal, "stageTo": "qualifiedtobuy", "dealValue": 100,
                                            "tenantId": unique("t")})
    finally:
        api.stop()
    assert response.status_code == 200 and response.json()["enqueued"] == 0, response.text
    key = response.json()["events"][0]["key"]
    assert stack.client.get(f"{WEBHOOK_PATH}/events/{key}").json()["status"] == "pending"
    # Let the sweeper's grace period pass without sleeping through it.
    with session_scope() as session:
        session.execute(update(WebhookEvent).where(WebhookEvent.idempotency_key == key)
                        .values(received_at=datetime.now(UTC) - timedelta(minutes=5)))
    swept = run_client_code(stack, (
        "import json\nfrom geminivideo.ml.tasks import sweep_webhook_events\n"
        "print(json.dumps(sweep_webhook_events.delay().get(timeout=60)))\n"
    ))
    assert swept["reenqueued"] >= 1
    event = wait_final(stack.client, key)
    assert event["status"] == "processed" and event["result"]["credit"] == 40
    time.sleep(0.5)
    assert [c.credit for c in conversions(deal)] == [40]
