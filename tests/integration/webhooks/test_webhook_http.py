"""The HTTP edge of the webhook pipeline against a real uvicorn: signatures, limits, refusals, click and feedback.

No worker is needed here: these tests check what the API answers and what it stores. Enqueued
messages go to a Redis database number nobody consumes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from geminivideo import procs
from geminivideo.contracts import QueueName
from geminivideo.ml.webhooks.attribution import fingerprint_hash
from geminivideo.ml.webhooks.signature import v1_signature
from tests.integration.webhooks.support import SECRET, WEBHOOK_PATH, make_ad, signed_v3, start_api, unique
from tests.support import env as test_support

# HubSpot's documented v1 example request, byte for byte, and its documented signature.
V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
V1_DOCUMENTED = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"


def _env(test_env: test_support.TestEnv, **overrides: str) -> dict[str, str]:
    redis_url = test_env.redis_url.rsplit("/", 1)[0] + "/13"
    return test_env.process_env(REDIS_URL=redis_url, **overrides)


@pytest.fixture(scope="module")
def api(test_env: test_support.TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    proc, base = start_api(_env(test_env), tmp_path_factory.mktemp("webhooks-http") / "api.log")
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client
    proc.stop()


def url(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/") + WEBHOOK_PATH


def deal_event(**fields: object) -> dict[str, object]:
    return {"eventId": 9, "portalId": 7, "occurredAt": 1_700_000_000_000, "subscriptionType": "deal.propertyChange",
            "objectId": int(uuid.uuid4().int % 10**9), "propertyName": "dealstage", "propertyValue": "closedwon",
            **fields}


def test_hubspots_documented_v1_request_is_accepted_and_stored_once(api: httpx.Client) -> None:
    headers = {"Content-Type": "application/json", "X-HubSpot-Signature": V1_DOCUMENTED,
               "X-HubSpot-Signature-Version": "v1"}
    first = api.post(WEBHOOK_PATH, content=V1_BODY, headers=headers)
    again = api.post(WEBHOOK_PATH, content=V1_BODY, headers=headers)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["signature"] == "v1"
    assert (first.json()["stored"], first.json()["ignored"], first.json()["enqueued"]) in {(1, 1, 0), (0, 0, 0)}
    assert again.json()["duplicates"] == 1 and again.json()["stored"] == 0
    key = again.json()["events"][0]["key"]
    stored = api.get(f"{WEBHOOK_PATH}/events/{key}").json()
    assert stored["status"] == "ignored" and stored["deliveries"] >= 2 and stored["payload"]["objectId"] == 123


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-HubSpot-Signature-v3"),
        ({"X-HubSpot-Signature": "0" * 64}, "does not match"),
        ({"X-HubSpot-Signature-v3": "bm9wZQ==", "X-HubSpot-Request-Timestamp": "1"}, "old"),
    ],
)
def test_unsigned_or_wrongly_signed_requests_get_401_with_a_reason(
    api: httpx.Client, headers: dict[str, str], reason: str
) -> None:
    response = api.post(WEBHOOK_PATH, content=json.dumps([deal_event()]), headers=headers)
    assert response.status_code == 401 and reason in response.json()["detail"]


def test_stale_timestamp_is_refused_even_when_correctly_signed(api: httpx.Client) -> None:
    body = json.dumps([deal_event()]).encode()
    response = api.post(WEBHOOK_PATH, content=body, headers=signed_v3(url(api), body, age_ms=301_000))
    assert response.status_code == 401 and "at most 300 s" in response.json()["detail"]
    tampered = api.post(WEBHOOK_PATH, content=body + b" ", headers=signed_v3(url(api), body))
    assert tampered.status_code == 401


def test_oversized_body_is_413_declared_or_streamed(api: httpx.Client) -> None:
    big = b"[" + b" " * (1024 * 1024) + b"]"
    headers = {"X-HubSpot-Signature": "x"}
    declared = api.post(WEBHOOK_PATH, content=big, headers=headers)
    streamed = api.post(WEBHOOK_PATH, content=iter([big[:600_000], big[600_000:]]), headers=headers)
    assert declared.status_code == streamed.status_code == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[{not json", "not valid JSON"),
        (json.dumps([deal_event(objectId=i) for i in range(101)]).encode(), "101 events"),
        (json.dumps([deal_event(), {"portalId": 7, "occurredAt": 1, "subscriptionType": "deal.creation"}]).encode(),
         "[1].objectId"),
        (json.dumps([deal_event(occurredAt="yesterday")]).encode(), "[0].occurredAt"),
        (json.dumps({"dealId": "d-1"}).encode(), "stageTo is required"),
        (json.dumps([deal_event(objectId="4\u00002")]).encode(), "[0].objectId: Value error, contains a NUL"),
    ],
)
def test_malformed_bodies_get_400_naming_the_problem(api: httpx.Client, body: bytes, message: str) -> None:
    response = api.post(WEBHOOK_PATH, content=body, headers=signed_v3(url(api), body))
    assert response.status_code == 400 and message in response.json()["detail"], response.text


def test_unknown_event_lookup_is_404(api: httpx.Client) -> None:
    assert api.get(f"{WEBHOOK_PATH}/events/{'0' * 64}").status_code == 404


def test_track_click_hashes_fingerprint_components_and_refuses_anonymous_clicks(
    api: httpx.Client, test_env: test_support.TestEnv
) -> None:
    components = {"screen": "390x844", "timezone": "Europe/Paris", "language": "fr-FR", "platform": "iPhone"}
    response = api.post("/api/ml/attribution/track-click", json={"ad_id": "ad-x", "fingerprint": components,
                                                                  "utm_campaign": "spring"})
    assert response.status_code == 201, response.text
    assert response.json()["fingerprint_hash"] == fingerprint_hash(dict(reversed(components.items())))
    anonymous = api.post("/api/ml/attribution/track-click", json={"ad_id": "ad-x", "utm_source": "facebook"})
    assert anonymous.status_code == 422 and "a click needs" in anonymous.text


def test_feedback_endpoint_credits_once_per_feedback_id(api: httpx.Client, test_env: test_support.TestEnv) -> None:
    with test_support.applied({"DATABASE_URL": test_env.sqlite_url}):
        _, ad = make_ad()
    feedback = {"ad_id": ad, "pipeline_value": 1200.0, "conversions": 1, "feedback_id": unique("fb")}
    first = api.post("/api/ml/battle-hardened/feedback", json=feedback)
    second = api.post("/api/ml/battle-hardened/feedback", json=feedback)
    assert first.status_code == second.status_code == 200, first.text
    assert (first.json()["applied"], second.json()["applied"]) == (True, False)
    assert second.json()["state"]["pipeline_value"] == 1200 and second.json()["state"]["feedback_count"] == 1
    missing = api.post("/api/ml/battle-hardened/feedback", json={"ad_id": "nope", "pipeline_value": 1})
    assert missing.status_code == 404 and "no ad 'nope'" in missing.json()["detail"]


def test_pipeline_config_is_validated(api: httpx.Client) -> None:
    bad = {"stages": {"a": {"probability": 0.5}}, "average_deal_value": 10, "entry_stage": "b"}
    response = api.put("/api/webhooks/pipelines/t-bad", json=bad)
    assert response.status_code == 422 and "entry_stage" in response.text


def test_a_portal_already_owned_by_another_tenant_is_409(api: httpx.Client) -> None:
    portal = uuid.uuid4().int % 10**12
    config = {"stages": {"won": {"probability": 1.0}}, "average_deal_value": 10, "entry_stage": "won",
              "portal_id": portal}
    first = api.put(f"/api/webhooks/pipelines/{unique('t')}", json=config)
    second = api.put(f"/api/webhooks/pipelines/{unique('t')}", json=config)
    assert first.status_code == 200, first.text
    assert second.status_code == 409 and f"portal_id {portal} belongs to another tenant" in second.text


def _short_lived_api(test_env: test_support.TestEnv, log: Path, **env: str) -> tuple[procs.ManagedProcess, str]:
    return start_api(_env(test_env, **env), log)


def test_without_a_secret_every_request_is_refused_unless_verification_is_off(
    test_env: test_support.TestEnv, tmp_path: Path
) -> None:
    proc, base = _short_lived_api(test_env, tmp_path / "no-secret.log", HUBSPOT_CLIENT_SECRET="")
    try:
        body = json.dumps([deal_event()]).encode()
        refused = httpx.post(base + WEBHOOK_PATH, content=body,
                             headers={"X-HubSpot-Signature": v1_signature(SECRET, body)}, timeout=30)
    finally:
        proc.stop()
    assert refused.status_code == 503 and "HUBSPOT_CLIENT_SECRET" in refused.json()["detail"]
    assert "refuses every request" in proc.log_tail(200)

    proc, base = _short_lived_api(test_env, tmp_path / "unverified.log", HUBSPOT_CLIENT_SECRET="",
                                  HUBSPOT_VERIFY_SIGNATURES="false")
    try:
        accepted = httpx.post(base + WEBHOOK_PATH, content=json.dumps([deal_event()]), timeout=30)
    finally:
        proc.stop()
    assert accepted.status_code == 200 and accepted.json()["signature"] == "unverified"
    assert "HUBSPOT_VERIFY_SIGNATURES=false" in proc.log_tail(200)


def test_database_down_answers_503_so_hubspot_retries(test_env: test_support.TestEnv, tmp_path: Path) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{procs.free_port()}/nowhere"
    proc, base = _short_lived_api(test_env, tmp_path / "db-down.log", DATABASE_URL=dead)
    try:
        body = json.dumps([deal_event()]).encode()
        response = httpx.post(base + WEBHOOK_PATH, content=body, headers=signed_v3(base + WEBHOOK_PATH, body),
                              timeout=60)
    finally:
        proc.stop()
    assert response.status_code == 503 and "retry later" in response.json()["detail"]


def queued_webhook_messages(test_env: test_support.TestEnv) -> list[dict[str, Any]]:
    """Every message waiting in this module's (unconsumed) broker database: task, argsrepr and events."""
    broker = redis.Redis.from_url(_env(test_env)["REDIS_URL"])
    messages = []
    for name in broker.scan_iter(match=QueueName.HUBSPOT_WEBHOOK_EVENTS.value + "*", _type="list"):
        for raw in broker.lrange(name, 0, -1):
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            messages.append({"task": message["headers"]["task"], "argsrepr": message["headers"]["argsrepr"],
                             "events": args[0]})
    broker.close()
    return messages


def test_a_delivered_batch_is_one_message_in_order_that_shows_keys_not_payloads(
    api: httpx.Client, test_env: test_support.TestEnv
) -> None:
    batch = [deal_event(eventId=i) for i in range(99)] + [{**deal_event(), "subscriptionType": "contact.creation"}]
    body = json.dumps(batch).encode()
    response = api.post(WEBHOOK_PATH, content=body, headers=signed_v3(url(api), body))
    assert response.status_code == 200 and response.json()["enqueued"] == 99, response.text
    keys = [e["key"] for e in response.json()["events"] if e["processed"]]
    mine = [m for m in queued_webhook_messages(test_env) if {e["eventKey"] for e in m["events"]} & set(keys)]
    assert len(mine) == 1, [m["argsrepr"] for m in mine]
    (message,) = mine
    assert message["task"] == "process_hubspot_events" and [e["eventKey"] for e in message["events"]] == keys
    assert message["argsrepr"] == f"[99 events: {keys[0][:12]}, {keys[1][:12]}, {keys[2][:12]}, …]"


def test_the_sweeper_sends_at_most_100_events_per_message(test_env: test_support.TestEnv) -> None:
    base = uuid.uuid4().int % 10**12
    payloads = [(f"{base + i:064x}", {"dealId": unique("deal"), "stageTo": "closedwon", "eventKey": f"{base + i:064x}"})
                for i in range(250)]
    # In a fresh process bound to this module's broker database, as the sweeping worker would be.
    code = ("import json, sys\nfrom geminivideo.ml.webhooks import store as webhook_store\n"
            "print(json.dumps(webhook_store.send([tuple(p) for p in json.load(sys.stdin)])))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(payloads), env=_env(test_env),
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [key for key, _ in payloads]
    sent = {key for key, _ in payloads}
    mine = [m for m in queued_webhook_messages(test_env) if {e["eventKey"] for e in m["events"]} & sent]
    assert sorted(len(m["events"]) for m in mine) == [50, 100, 100]
    assert [e["eventKey"] for m in sorted(mine, key=lambda m: m["events"][0]["eventKey"]) for e in m["events"]] == [
        key for key, _ in payloads]
