"""Reading webhook bodies: HubSpot arrays, the internal object, idempotency keys and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from geminivideo.contracts import DealStageChange, TrackClick, parse_payload
from geminivideo.errors import InvalidPayload
from geminivideo.ml.webhooks.events import parse_body

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def hs_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "eventId": 100, "subscriptionId": 7, "portalId": 62515, "appId": 1, "occurredAt": 1_714_560_000_000,
        "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 4242,
        "propertyName": "dealstage", "propertyValue": "contractsent", "changeSource": "CRM",
    }
    event.update(overrides)
    return event


def body(*events: object) -> bytes:
    return json.dumps(list(events)).encode()


def test_a_dealstage_change_becomes_a_task_payload() -> None:
    (event,) = parse_body(body(hs_event()), received_at=NOW)
    assert event.source == "hubspot" and event.event_type == "deal.propertyChange"
    change = parse_payload(DealStageChange, event.deal)
    assert (change.deal_id, change.stage_to, change.portal_id, change.event_key) == ("4242", "contractsent", 62515,
                                                                                      event.key)
    assert change.occurred_at == datetime.fromtimestamp(1_714_560_000, tz=UTC)
    assert change.tenant_id == "hubspot-portal-62515"


def test_redelivery_has_the_same_key_and_event_id_alone_does_not_decide() -> None:
    first = parse_body(body(hs_event()), received_at=NOW)[0].key
    retried = parse_body(body(hs_event(attemptNumber=3, eventId=999)), received_at=NOW)[0].key
    other_portal = parse_body(body(hs_event(portalId=1)), received_at=NOW)[0].key
    later = parse_body(body(hs_event(occurredAt=1_714_560_000_001)), received_at=NOW)[0].key
    assert first == retried
    assert len({first, other_portal, later}) == 3


def test_mixed_batch_only_deal_stage_changes_are_processed() -> None:
    events = parse_body(body(
        hs_event(),
        hs_event(subscriptionType="contact.creation", propertyName=None, propertyValue=None, objectId=1),
        hs_event(propertyName="amount", propertyValue="5000"),
        hs_event(subscriptionType="deal.creation", propertyName=None, propertyValue=None, objectId=77),
        hs_event(subscriptionType="object.propertyChange", objectTypeId="0-3", objectId=78),
        hs_event(subscriptionType="object.propertyChange", objectTypeId="0-1", objectId=79),
        {"eventType": "deal.propertyChange", "portalId": 5, "occurredAt": 1, "objectId": 80,
         "propertyName": "dealstage", "propertyValue": "closedwon"},
    ), received_at=NOW)
    assert [e.deal is not None for e in events] == [True, False, False, True, True, False, True]
    creation = parse_payload(DealStageChange, events[3].deal)
    assert creation.is_creation and creation.stage_to is None


def test_the_same_event_twice_in_one_batch_is_one_event() -> None:
    assert len(parse_body(body(hs_event(), hs_event(attemptNumber=1)), received_at=NOW)) == 1


def test_internal_object_of_the_seed() -> None:
    raw = {"dealId": "deal_123", "stageTo": "closedwon", "dealValue": 10000, "tenantId": "tenant_1"}
    (event,) = parse_body(json.dumps(raw).encode(), received_at=NOW)
    change = parse_payload(DealStageChange, event.deal)
    assert event.source == "internal" and change.occurred_at == NOW and change.deal_value == 10000
    again = parse_body(json.dumps(raw, indent=2).encode(), received_at=NOW)[0]
    assert again.key == event.key
    keyed = parse_body(json.dumps({**raw, "eventKey": "crm-1"}).encode(), received_at=NOW)[0]
    assert keyed.key != event.key


@pytest.mark.parametrize("occurred_at", ["2024-05-01T12:00:00", "2024-05-01T12:00:00Z", 1_714_564_800_000])
def test_occurred_at_without_a_zone_is_utc(occurred_at: object) -> None:
    """A naive ISO time used to reach the future-date check as naive and fail there with a TypeError (a 500)."""
    raw = {"dealId": "d", "stageTo": "closedwon", "occurredAt": occurred_at}
    (event,) = parse_body(json.dumps(raw).encode(), received_at=NOW)
    assert event.occurred_at == NOW and parse_payload(TrackClick, {"ad_id": "a", "fbclid": "f",
                                                                   "timestamp": occurred_at}).timestamp == NOW


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b'"text"', "expected a JSON array"),
        (body(*[hs_event(objectId=i) for i in range(101)]), "101 events"),
        (body(hs_event(), 5), r"\[1\]: expected an event object"),
        (body(hs_event(portalId="abc")), r"\[0\]\.portalId"),
        (body({k: v for k, v in hs_event().items() if k != "occurredAt"}), r"\[0\]\.occurredAt"),
        (body(hs_event(subscriptionType=None)), "subscriptionType"),
        (json.dumps({"dealId": "d"}).encode(), "stageTo is required"),
        (json.dumps({"dealId": "d", "stageTo": "x", "dealValue": -1}).encode(), "dealValue"),
        (json.dumps({"dealId": "d", "stageTo": "x", "ip_address": "999.1.1.1"}).encode(), "ip_address"),
        (json.dumps({"dealId": "d", "stageTo": "x", "bogus": 1}).encode(), "bogus"),
        (json.dumps({"dealId": "d", "stageTo": "x", "occurredAt": "2999-01-01T00:00:00Z"}).encode(), "in the future"),
        # PostgreSQL text cannot hold NUL: refused here (400) instead of failing the insert or the worker (500).
        (body(hs_event(objectId="42\u00001")), r"\[0\]\.objectId: .*NUL"),
        (body(hs_event(propertyValue="closed\u0000won")), r"\[0\]\.propertyValue: .*NUL"),
        (json.dumps({"dealId": "d", "stageTo": "x", "tenantId": "t\u0000"}).encode(), "tenantId: .*NUL"),
    ],
)
def test_refusals_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        parse_body(raw, received_at=NOW)


def test_empty_array_is_accepted() -> None:
    assert parse_body(b"[]", received_at=NOW) == []


def test_a_nul_in_a_field_hubspot_added_is_kept_as_received() -> None:
    """Unknown fields go to a JSON column unchanged (json, not jsonb, stores the \\u0000 escape)."""
    (event,) = parse_body(body(hs_event(newField="a\u0000b")), received_at=NOW)
    assert event.payload["newField"] == "a\x00b" and event.deal is not None


@pytest.mark.parametrize("millis", [1e300, 10**20, -(10**20), float("inf")])
def test_an_occurred_at_beyond_any_date_is_an_invalid_payload_not_a_crash(millis: float) -> None:
    # Found by the hostile-payload fuzzing: datetime.fromtimestamp raised OverflowError/OSError (a 500).
    with pytest.raises(InvalidPayload, match=r"occurredAt: .*out of range for a date"):
        parse_payload(DealStageChange, {"dealId": "1", "stageTo": "closedwon", "occurredAt": millis})
