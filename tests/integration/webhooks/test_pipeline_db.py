"""The worker's half of the pipeline on real SQLite and PostgreSQL: credits, attribution, order, exactly once.

These call ``hubspot.process_event`` (the domain function the task wraps) in this process; the
end-to-end tests run the same code in a real worker behind the real API.
"""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update

from geminivideo.contracts import PipelineConfig, SamplerFeedback
from geminivideo.db.models.webhooks import EventStatus, WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.errors import DependencyUnavailable, InvalidPayload
from geminivideo.ml.decisions.sampler_feedback import record_feedback
from geminivideo.ml.webhooks import pipeline as hubspot
from geminivideo.ml.webhooks import store as webhook_store
from geminivideo.ml.webhooks.events import parse_body
from geminivideo.ml.webhooks.revenue import SERVICE_BUSINESS
from tests.integration.webhooks.support import (
    DEAL,
    conversions,
    deal_state,
    event_rows,
    fake_hubspot,
    make_ad,
    record_click,
    sampler,
    unique,
)
from tests.support import env as test_support

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # conversions long before "now": windows must use occurredAt
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def change(deal_id: str, stage: str, tenant_id: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"dealId": deal_id, "stageTo": stage, "tenantId": tenant_id, "occurredAt": at.isoformat(), **extra}


def process(payload: dict[str, Any]) -> dict[str, Any]:
    return hubspot.process_event(payload, delivery_id=uuid.uuid4().hex).model_dump()


def run_threads(targets: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(targets)
    barrier = threading.Barrier(len(targets))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = targets[i]()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_seed_example_credits_the_attributed_ads_sampler_state(database_url: str) -> None:
    tenant, ad = make_ad()
    record_click(ad, T0 - timedelta(days=3), fbclid="fb-seed-" + tenant)
    result = process(change("deal_123", "closedwon", tenant, T0, dealValue=10000, fbclid="fb-seed-" + tenant))
    assert result["status"] == "processed" and result["synthetic_revenue"] == 10000 and result["credit"] == 10000
    assert result["ad_id"] == ad and result["attribution"]["layer"] == "click_id"
    assert result["attribution"]["confidence"] == 1.0
    assert sampler(ad) == {"pipeline_value": 10000, "cash_revenue": 10000, "conversions": 1, "feedback_count": 1}


def test_stage_walk_to_closed_lost_sums_to_zero_on_deal_and_ad(database_url: str) -> None:
    tenant, ad = make_ad()
    deal = unique("deal")
    record_click(ad, T0 - timedelta(hours=1), click_id="c-" + deal)
    steps = [("appointmentscheduled", {"dealValue": 10000, "click_id": "c-" + deal}), ("contractsent", {}),
             ("closedlost", {})]
    credits = [process(change(deal, stage, tenant, T0 + timedelta(days=i), **extra))["credit"]
               for i, (stage, extra) in enumerate(steps)]
    assert credits == [2000, 7000, -9000]
    assert sum(c.credit for c in conversions(deal)) == 0
    assert sampler(ad)["pipeline_value"] == 0 and sampler(ad)["feedback_count"] == 3
    state = deal_state(tenant, deal)
    assert state is not None and state.stage == "closedlost" and state.amount == 10000


@pytest.mark.parametrize(
    ("identifiers", "click", "clicked_before", "layer", "confidence"),
    [
        ({"gclid": "g-1"}, {"gclid": "g-1"}, timedelta(days=30), "click_id", 1.0),
        ({"fingerprint_hash": "fp-1"}, {"fingerprint_hash": "fp-1"}, timedelta(days=6, hours=23), "fingerprint", 0.9),
        ({"fingerprint_hash": "fp-2"}, {"fingerprint_hash": "fp-2"}, timedelta(days=7, minutes=1), None, None),
        ({"fingerprint_hash": "fp-3"}, {"fingerprint_hash": "fp-3"}, -timedelta(minutes=5), None, None),
        ({"ip_address": "203.0.113.9", "user_agent": CHROME}, {"ip_address": "203.0.113.9", "user_agent": CHROME},
         timedelta(hours=23), "ip_user_agent", 0.7),
        ({"ip_address": "203.0.113.10", "user_agent": CHROME}, {"ip_address": "203.0.113.10", "user_agent": CHROME},
         timedelta(hours=24, minutes=1), None, None),
        ({"ip_address": "203.0.113.11", "user_agent": CHROME},
         {"ip_address": "203.0.113.11", "user_agent": CHROME.replace("120", "121")}, timedelta(hours=1), None, None),
    ],
    ids=["click-id", "fingerprint-6d23h", "fingerprint-7d1m", "fingerprint-after", "ip-ua-23h", "ip-ua-24h1m",
         "ip-ua-other-agent"],
)
def test_attribution_layers_and_windows(
    database_url: str, identifiers: dict[str, str], click: dict[str, str], clicked_before: timedelta,
    layer: str | None, confidence: float | None,
) -> None:
    tenant, ad = make_ad()
    suffix = unique("x")
    # Make identifiers unique to this test run, so earlier runs on the shared database cannot match.
    ids = {k: (f"{v}-{suffix}" if k in ("gclid", "fingerprint_hash") else v) for k, v in identifiers.items()}
    clk = {k: (f"{v}-{suffix}" if k in ("gclid", "fingerprint_hash") else v) for k, v in click.items()}
    conversion_at = T0 + timedelta(days=int(uuid.uuid4().int % 1000))  # far from every other test's clicks
    record_click(ad, conversion_at - clicked_before, tenant_id=tenant, **clk)
    result = process(change(unique("deal"), "qualifiedtobuy", tenant, conversion_at, dealValue=500, **ids))
    found = result["attribution"]
    assert found["layer"] == layer and found["confidence"] == confidence
    assert result["ad_id"] == (ad if layer else None)
    assert sampler(ad)["pipeline_value"] == (200 if layer else 0)
    ran = [entry["layer"] for entry in found["layers"] if entry["ran"]]
    assert ran[-1] == (layer or ran[-1]) and len(found["layers"]) == 3


def test_out_of_order_change_is_recorded_stale_and_not_applied(database_url: str) -> None:
    tenant, _ = make_ad()
    deal = unique("deal")
    process(change(deal, "contractsent", tenant, T0 + timedelta(hours=2), dealValue=1000))
    late = process(change(deal, "qualifiedtobuy", tenant, T0 + timedelta(hours=1)))
    assert late["status"] == "stale" and late["credit"] == 0 and "older than" in late["note"]
    state = deal_state(tenant, deal)
    assert state is not None and state.stage == "contractsent"
    assert [c.stage_to for c in conversions(deal)] == ["contractsent"]


def test_same_event_processed_concurrently_credits_once(database_url: str) -> None:
    tenant, ad = make_ad()
    deal = unique("deal")
    record_click(ad, T0, click_id="c-" + deal)
    payload = change(deal, "closedwon", tenant, T0 + timedelta(minutes=5), dealValue=4000, click_id="c-" + deal)
    results = run_threads([lambda: hubspot.process_event(payload, delivery_id="one-delivery-" + deal)] * 5)
    statuses = sorted(r.status for r in results)
    assert statuses == ["duplicate"] * 4 + ["processed"], results
    assert len(conversions(deal)) == 1
    assert sampler(ad) == {"pipeline_value": 4000, "cash_revenue": 4000, "conversions": 1, "feedback_count": 1}


def test_concurrent_changes_of_one_deal_keep_the_books_consistent(database_url: str) -> None:
    tenant, ad = make_ad()
    deal = unique("deal")
    record_click(ad, T0, click_id="c-" + deal)
    process(change(deal, "appointmentscheduled", tenant, T0, dealValue=1000, click_id="c-" + deal))
    stages = ["qualifiedtobuy", "presentationscheduled", "contractsent", "decisionmakerboughtin", "closedwon"]
    payloads = [change(deal, stage, tenant, T0 + timedelta(minutes=i + 1)) for i, stage in enumerate(stages)]
    results = run_threads([lambda p=p: process(p) for p in payloads])  # type: ignore[misc]
    assert not [r for r in results if isinstance(r, Exception)], results
    state = deal_state(tenant, deal)
    assert state is not None
    total = sum(c.credit for c in conversions(deal))
    assert total == pytest.approx(state.expected_value)  # the deal was first seen without stageFrom
    assert sampler(ad)["pipeline_value"] == pytest.approx(state.expected_value)
    applied = [r for r in results if r["status"] == "processed"]
    assert len(applied) + sum(r["status"] == "stale" for r in results) == len(stages)


def test_store_events_concurrently_stores_each_event_once(database_url: str) -> None:
    deal = unique("deal")
    raw = ('[{"eventId":1,"portalId":99,"occurredAt":1714560000000,"subscriptionType":"deal.propertyChange",'
           f'"objectId":"{deal}","propertyName":"dealstage","propertyValue":"closedwon"}}]').encode()
    events = parse_body(raw, received_at=T0)

    def store() -> int:
        with session_scope() as session:
            return len(webhook_store.store_events(session, events, received_at=T0).new)

    assert sorted(run_threads([store] * 6)) == [0, 0, 0, 0, 0, 1]
    (row,) = event_rows(deal)
    assert row.deliveries == 6 and row.status == EventStatus.PENDING


def test_overlapping_batches_in_any_order_never_deadlock(database_url: str) -> None:
    """Deliveries of the same events in different orders, stored and marked at the same moment, all succeed.

    Each writer locks the rows it touches in one order (the key's), so two of them never wait on each other:
    before, a batch inserted in body order against another in reverse, or a delivery counted against the
    mark that follows the first one, could deadlock on PostgreSQL (one request answered 503).
    """
    def deliver(order: list[dict[str, Any]]) -> int:
        events = parse_body(json.dumps(order).encode(), received_at=T0)
        with session_scope() as session:
            outcome = webhook_store.store_events(session, events, received_at=T0)
        with session_scope() as session:
            webhook_store.mark_enqueued(session, [e.key for e in reversed(events)])
        return len(outcome.new)

    rounds, writers = 12, 8
    for round_ in range(rounds):
        deals = [unique("deal") for _ in range(6)]
        body = [{"eventId": i, "portalId": 11, "occurredAt": 1_714_560_000_000 + i,
                 "subscriptionType": "deal.propertyChange", "objectId": deal, "propertyName": "dealstage",
                 "propertyValue": "qualifiedtobuy"} for i, deal in enumerate(deals)]
        rotations = [body[w % len(body):] + body[:w % len(body)] for w in range(writers)]
        orders = [rotated if w % 2 else rotated[::-1] for w, rotated in enumerate(rotations)]
        results = run_threads([partial(deliver, order) for order in orders])
        assert not [r for r in results if isinstance(r, Exception)], (round_, results)
        assert sum(results) == len(deals), (round_, results)
        rows = [row for deal in deals for row in event_rows(deal)]
        assert [(r.deliveries, r.status) for r in rows] == [(writers, EventStatus.ENQUEUED)] * len(deals)


def test_store_events_keeps_every_column_as_received(database_url: str) -> None:
    """PostgreSQL stores a batch through one json_to_recordset statement: nothing may change on the way."""
    deal, contact = unique("deal"), unique("contact")
    odd = {"nested": [1, 2.5, None, True, {"k": "é ☃ 😀"}], "nul": "a\u0000b", "quote": "\"'\\"}
    raw = json.dumps([
        {"portalId": 7, "occurredAt": 1_714_560_000_123, "subscriptionType": "deal.propertyChange",
         "objectId": deal, "propertyName": "dealstage", "propertyValue": "contractsent", "extra": odd},
        {"portalId": 7, "occurredAt": 1_714_560_000_456, "subscriptionType": "contact.creation", "objectId": contact},
    ]).encode()
    received = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    events = parse_body(raw, received_at=received)
    with session_scope() as session:
        assert len(webhook_store.store_events(session, events, received_at=received).new) == 2
    (stage,) = event_rows(deal)
    (ignored,) = event_rows(contact)
    assert stage.payload == json.loads(raw)[0] and stage.payload["extra"] == odd
    assert stage.deal_payload == events[0].deal and stage.deal_payload is not None
    assert (stage.idempotency_key, stage.source, stage.event_type, stage.portal_id) == (
        events[0].key, "hubspot", "deal.propertyChange", 7)
    assert stage.occurred_at == datetime(2024, 5, 1, 10, 40, 0, 123000, tzinfo=UTC) and stage.received_at == received
    assert (stage.status, stage.attempts, stage.deliveries, stage.enqueued_at) == (EventStatus.PENDING, 0, 1, None)
    assert (ignored.status, ignored.deal_payload, ignored.event_type) == (EventStatus.IGNORED, None, "contact.creation")


def test_mark_enqueued_moves_only_pending_events(database_url: str) -> None:
    deals = [unique("deal") for _ in range(3)]
    raw = json.dumps([
        {"portalId": 8, "occurredAt": 1_714_560_000_000, "subscriptionType": "deal.propertyChange",
         "objectId": deal, "propertyName": "dealstage", "propertyValue": "qualifiedtobuy"} for deal in deals]).encode()
    events = parse_body(raw, received_at=T0)
    with session_scope() as session:
        webhook_store.store_events(session, events, received_at=T0)
    assert events[0].deal is not None
    hubspot.process_event(events[0].deal)  # a fast worker applied it before the API marked it
    with session_scope() as session:
        webhook_store.mark_enqueued(session, [e.key for e in events] + ["0" * 64])
    rows = [event_rows(deal)[0] for deal in deals]
    assert [r.status for r in rows] == [EventStatus.PROCESSED, EventStatus.ENQUEUED, EventStatus.ENQUEUED]
    assert rows[0].enqueued_at is None and rows[1].enqueued_at is not None and rows[2].enqueued_at is not None


def test_invalid_change_fails_at_once_and_is_recorded(database_url: str) -> None:
    tenant, _ = make_ad()
    deal = unique("deal")
    with pytest.raises(InvalidPayload, match="stageTo: 'signed' is not a stage"):
        process(change(deal, "signed", tenant, T0))
    (row,) = event_rows(deal)
    assert row.status == EventStatus.FAILED and "signed" in (row.error or "")
    with pytest.raises(InvalidPayload, match="dealValue"):
        hubspot.process_event({"dealId": deal, "stageTo": "closedwon", "dealValue": "lots"}, delivery_id=deal)
    listed = hubspot_failed_keys()
    assert row.idempotency_key in listed


def hubspot_failed_keys() -> set[str]:
    with session_scope() as session:
        listing = webhook_store.list_events(session, status=EventStatus.FAILED, limit=500)
    return {event["key"] for event in listing["events"]}


def test_tenant_pipeline_and_portal_mapping(database_url: str) -> None:
    tenant, _ = make_ad()
    portal = int(uuid.uuid4().int % 10**9)
    with session_scope() as session:
        hubspot.save_pipeline(session, tenant, SERVICE_BUSINESS.model_copy(update={"portal_id": portal}))
    deal = unique("deal")
    first = process({"dealId": deal, "stageTo": "show_up", "portalId": portal, "occurredAt": T0.isoformat()})
    assert first["tenant_id"] == tenant and first["synthetic_revenue"] == 9000 and first["credit"] == 9000
    won = process({"dealId": deal, "stageTo": "closed_won", "portalId": portal,
                   "occurredAt": (T0 + timedelta(hours=1)).isoformat()})
    assert won["credit"] == 6000 and won["stage_from"] == "show_up"
    custom = PipelineConfig.model_validate({"stages": {"new": {"probability": 0.1}, "won": {"value": 50, "won": True}},
                                            "average_deal_value": 300})
    with session_scope() as session:
        hubspot.save_pipeline(session, tenant, custom)
    other = process(change(unique("deal"), "new", tenant, T0))
    assert other["amount"] == 300 and other["amount_source"] == "tenant_average" and other["credit"] == 30


def test_deal_creation_takes_the_entry_stage_and_never_moves_a_known_deal(database_url: str) -> None:
    tenant, _ = make_ad()
    deal = unique("deal")
    created = process({"dealId": deal, "tenantId": tenant, "isCreation": True, "occurredAt": T0.isoformat()})
    assert created["stage_to"] == "appointmentscheduled" and created["credit"] == 2000  # default average 10,000
    process(change(deal, "contractsent", tenant, T0 + timedelta(minutes=1)))
    again = process({"dealId": deal, "tenantId": tenant, "isCreation": True,
                     "occurredAt": (T0 + timedelta(minutes=2)).isoformat()})
    assert again["status"] == "stale"
    state = deal_state(tenant, deal)
    assert state is not None and state.stage == "contractsent"


def test_late_attribution_catches_the_ad_up_once(database_url: str) -> None:
    tenant, ad = make_ad()
    deal = unique("deal")
    process(change(deal, "qualifiedtobuy", tenant, T0, dealValue=1000))  # no identifiers yet
    record_click(ad, T0, click_id="late-" + deal)
    result = process(change(deal, "closedwon", tenant, T0 + timedelta(days=1), click_id="late-" + deal))
    assert result["ad_id"] == ad and result["credit"] == 600
    assert sampler(ad) == {"pipeline_value": 1000, "cash_revenue": 1000, "conversions": 1, "feedback_count": 1}


def test_external_feedback_applies_once_per_feedback_id(database_url: str) -> None:
    _, ad = make_ad()
    feedback = SamplerFeedback(ad_id=ad, pipeline_value=250, cash_revenue=100, conversions=1, feedback_id=unique("fb"))
    for expected in (True, False):
        with session_scope() as session:
            applied, state = record_feedback(session, feedback)
        assert applied is expected
        assert (state["pipeline_value"], state["cash_revenue"], state["conversions"], state["feedback_count"]) == (
            250, 100, 1, 1)
    with session_scope() as session, pytest.raises(InvalidPayload, match="no ad"):
        record_feedback(session, SamplerFeedback(ad_id="no-such-ad", pipeline_value=1))


def test_amount_and_click_come_from_the_crm_when_the_event_has_none(database_url: str) -> None:
    tenant, ad = make_ad()
    deal = unique("deal")
    fbclid = unique("fb")
    record_click(ad, T0 - timedelta(hours=2), fbclid=fbclid)
    with fake_hubspot() as (crm, base):
        crm.default = (200, {}, {**DEAL, "id": deal, "properties": {**DEAL["properties"], "fbclid": fbclid}})
        crm.script = [(503, {}, {"status": "error"})] * 3
        with test_support.applied({"HUBSPOT_ACCESS_TOKEN": "pat-test", "HUBSPOT_API_BASE_URL": base}):
            with pytest.raises(DependencyUnavailable):
                hubspot.process_event(change(deal, "contractsent", tenant, T0), delivery_id="crm-" + deal)
            (row,) = event_rows(deal)
            assert row.status == EventStatus.ENQUEUED and "DependencyUnavailable" in (row.error or "")
            result = hubspot.process_event(change(deal, "contractsent", tenant, T0), delivery_id="crm-" + deal)
    assert result.status == "processed" and result.amount == 12500.5 and result.amount_source == "hubspot_crm"
    assert result.ad_id == ad and result.credit == pytest.approx(11250.45)
    assert crm.requests[-1]["auth"] == "Bearer pat-test" and f"/deals/{deal}?" in crm.requests[-1]["path"]
    assert sampler(ad)["pipeline_value"] == pytest.approx(11250.45)


def test_a_callers_own_event_key_dedupes_separate_messages(database_url: str) -> None:
    tenant, _ = make_ad()
    deal = unique("deal")
    for event_key in ("crm-change-" + deal, uuid.uuid4().hex + uuid.uuid4().hex):
        payload = change(deal + event_key[-4:], "qualifiedtobuy", tenant, T0, dealValue=100, eventKey=event_key)
        first = hubspot.process_event(payload, delivery_id=uuid.uuid4().hex)
        second = hubspot.process_event(payload, delivery_id=uuid.uuid4().hex)
        assert (first.status, second.status) == ("processed", "duplicate") and second.credit == first.credit == 40


def test_sweep_resends_overdue_events_and_never_reopens_an_applied_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker hand-off is replaced by applying the event at once, the worst interleaving a fast worker
    can produce: the event is processed before the sweep marks it re-enqueued."""
    deal, hopeless_deal = unique("deal"), unique("deal")
    raw = json.dumps([
        {"portalId": 5, "occurredAt": 1_714_560_000_000, "subscriptionType": "deal.propertyChange",
         "objectId": object_id, "propertyName": "dealstage", "propertyValue": "qualifiedtobuy"}
        for object_id in (deal, hopeless_deal)]).encode()
    events = parse_body(raw, received_at=T0)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with session_scope() as session:
        webhook_store.store_events(session, events, received_at=long_ago)
        session.execute(update(WebhookEvent).where(WebhookEvent.object_id == hopeless_deal)
                        .values(attempts=webhook_store.MAX_ATTEMPTS, error="broker gone"))
    applied: list[str] = []

    def deliver_and_apply_at_once(payloads: Any) -> list[str]:
        for key, payload in payloads:
            hubspot.process_event(payload)
            applied.append(key)
        return applied

    monkeypatch.setattr(webhook_store, "send", deliver_and_apply_at_once)
    report = hubspot.sweep_unprocessed_events()
    assert report["given_up"] >= 1 and events[0].key in applied and events[1].key not in applied
    (done,) = event_rows(deal)
    (gave_up,) = event_rows(hopeless_deal)
    assert done.status == EventStatus.PROCESSED and done.result is not None
    assert gave_up.status == EventStatus.FAILED and "gave up after 20 attempts" in (gave_up.error or "")
    assert [c.credit for c in conversions(deal)] == [4000]  # tenant average 10,000 × 0.4


# ─── Batches (what process_hubspot_events runs for each message) ────────────────────────────────────────
def test_a_batch_applies_each_event_once_and_a_bad_event_fails_alone(database_url: str) -> None:
    tenant, _ = make_ad()
    good, bad, other = unique("deal"), unique("deal"), unique("deal")
    key = uuid.uuid4().hex * 2  # a caller's own 64-hex key that the API never stored
    first = change(good, "qualifiedtobuy", tenant, T0, dealValue=100, eventKey=key)
    batch = [first, change(bad, "signed-contract", tenant, T0), change(other, "closedwon", tenant, T0, dealValue=7),
             first]
    outcome = hubspot.process_events(batch)
    assert (outcome.applied, outcome.failed, outcome.deferred, outcome.unstarted) == (
        {"processed": 2, "duplicate": 1}, 1, [], [])
    assert [c.credit for c in conversions(good)] == [40] and [c.credit for c in conversions(other)] == [7]
    (failed,) = event_rows(bad)
    assert failed.status == EventStatus.FAILED and "'signed-contract' is not a stage" in (failed.error or "")
    assert hubspot.process_events(batch).applied == {"duplicate": 3}  # a redelivered message changes nothing


def test_a_crm_outage_defers_the_rest_of_the_batch_and_the_retry_applies_it_once(database_url: str) -> None:
    tenant, _ = make_ad()
    deals = [unique("deal") for _ in range(3)]
    batch = [change(deal, "contractsent", tenant, T0) for deal in deals]
    with fake_hubspot() as (crm, base):
        crm.script = [(200, {}, DEAL), *[(503, {}, {"status": "error"})] * 3]  # fine once, then down
        with test_support.applied({"HUBSPOT_ACCESS_TOKEN": "pat-test", "HUBSPOT_API_BASE_URL": base}):
            outcome = hubspot.process_events(batch)
            assert outcome.applied == {"processed": 1} and outcome.failed == 0
            assert [e["dealId"] for e in outcome.deferred] == deals[1:]  # the third was not even tried
            assert outcome.last_error is not None and "DependencyUnavailable" in outcome.last_error
            retried = hubspot.process_events(outcome.deferred)
    assert retried.applied == {"processed": 2} and retried.deferred == []
    assert [sum(f"/deals/{deal}?" in r["path"] for r in crm.requests) for deal in deals] == [1, 3 + 1, 1]
    assert all([c.credit for c in conversions(deal)] == [pytest.approx(11250.45)] for deal in deals)


def test_the_soft_time_limit_hands_back_the_interrupted_event_and_the_rest(database_url: str) -> None:
    """Billiard raises SoftTimeLimitExceeded from a signal handler in the task's thread; so does this test."""
    tenant, _ = make_ad()
    deals = [unique("deal") for _ in range(3)]
    batch = [change(deal, "contractsent", tenant, T0) for deal in deals]

    def soft_limit(*_: Any) -> None:
        raise SoftTimeLimitExceeded()

    with fake_hubspot() as (crm, base), test_support.applied({"HUBSPOT_ACCESS_TOKEN": "pat-test",
                                                               "HUBSPOT_API_BASE_URL": base}):
        hubspot.process_events(batch[:1])
        crm.delay_s = 5.0
        previous = signal.signal(signal.SIGALRM, soft_limit)
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # fires while the second event waits on the CRM
        try:
            outcome = hubspot.process_events(batch)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        crm.delay_s = 0.0
        assert outcome.applied == {"duplicate": 1} and [e["dealId"] for e in outcome.unstarted] == deals[1:]
        assert conversions(deals[1]) == [] and event_rows(deals[1])[0].status == EventStatus.ENQUEUED
        assert hubspot.process_events(outcome.unstarted).applied == {"processed": 2}
    assert [len(conversions(deal)) for deal in deals] == [1, 1, 1]
