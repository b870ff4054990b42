"""Reading a webhook body: HubSpot's event array or the internal single object, with idempotency keys.

Pure functions (no database, no broker): the API calls ``parse_body`` on the verified raw bytes and
gets one ``IncomingEvent`` per event, each with the key it is stored under and, for deal-stage
changes, the normalised ``DealStageChange`` payload the worker will process.

HubSpot's ``eventId`` is not unique across portals and subscriptions, so the key is a hash of what
identifies a change: portal, subscription type, object, property, value and ``occurredAt``. A batch
HubSpot redelivers (it retries up to 10 times over 24 h) therefore maps to the same keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from geminivideo.contracts import DealStageChange, HubSpotEvent, describe_errors, parse_payload
from geminivideo.errors import InvalidPayload

MAX_EVENTS = 100
DEALS_OBJECT_TYPE = "0-3"  # HubSpot's object type id of deals (generic object.* subscriptions)
_STAGE_PROPERTY = "dealstage"


@dataclass(frozen=True)
class IncomingEvent:
    key: str
    source: str  # "hubspot" or "internal"
    event_type: str
    payload: dict[str, Any]  # the event as received
    deal: dict[str, Any] | None  # DealStageChange (by alias) for the worker; None when only stored
    portal_id: int | None
    object_id: str | None
    occurred_at: datetime | None


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def hubspot_key(event: HubSpotEvent) -> str:
    return _digest("hubspot", event.portal_id, event.kind, event.object_id, event.property_name,
                   event.property_value, event.occurred_at)


def internal_key(change: DealStageChange, raw: dict[str, Any]) -> str:
    """The caller's ``eventKey`` when given, else the canonical body: an identical resend is one event."""
    if change.event_key:
        return _digest("internal-key", change.tenant_id, change.event_key)
    return _digest("internal-body", json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str))


def _decode(raw: bytes) -> Any:
    try:
        # Decoded as UTF-8 explicitly: json.loads(bytes) would guess UTF-16/32 from the first bytes.
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPayload("body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidPayload(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _is_deal_stage_change(event: HubSpotEvent) -> bool:
    kind = event.kind
    if kind in ("object.propertyChange", "object.creation") and event.object_type_id != DEALS_OBJECT_TYPE:
        return False
    if kind in ("deal.creation", "object.creation"):
        return True
    return kind in ("deal.propertyChange", "object.propertyChange") and event.property_name == _STAGE_PROPERTY \
        and bool(event.property_value)


def _hubspot_deal_payload(event: HubSpotEvent, key: str, index: int) -> dict[str, Any]:
    creation = event.kind.endswith(".creation")
    stage = event.property_value if event.property_name == _STAGE_PROPERTY and event.property_value else None
    data = {
        "dealId": str(event.object_id), "stageTo": stage, "tenantId": f"hubspot-portal-{event.portal_id}",
        "portalId": event.portal_id, "occurredAt": event.occurred_at, "eventKey": key, "isCreation": creation,
    }
    try:
        change = parse_payload(DealStageChange, data)
    except InvalidPayload as exc:
        raise InvalidPayload(f"[{index}]: {exc}") from None
    return change.model_dump(mode="json", by_alias=True, exclude_none=True)


def _hubspot_event(item: Any, index: int) -> IncomingEvent:
    if not isinstance(item, dict):
        raise InvalidPayload(f"[{index}]: expected an event object, got {type(item).__name__}")
    try:
        event = HubSpotEvent.model_validate(item)
    except ValidationError as exc:
        raise InvalidPayload(describe_errors(exc, prefix=f"[{index}].", root=f"[{index}].event")) from None
    key = hubspot_key(event)
    deal = _hubspot_deal_payload(event, key, index) if _is_deal_stage_change(event) else None
    return IncomingEvent(
        key=key, source="hubspot", event_type=event.kind, payload=item, deal=deal, portal_id=event.portal_id,
        object_id=str(event.object_id), occurred_at=datetime.fromtimestamp(event.occurred_at / 1000, tz=UTC),
    )


def _internal_event(item: dict[str, Any], received_at: datetime) -> IncomingEvent:
    change = parse_payload(DealStageChange, item)
    key = internal_key(change, item)
    # An internal change without occurredAt happened when it arrived: later arrivals are newer.
    updates: dict[str, Any] = {"event_key": key, "occurred_at": change.occurred_at or received_at}
    deal = change.model_copy(update=updates).model_dump(mode="json", by_alias=True, exclude_none=True)
    return IncomingEvent(
        key=key, source="internal", event_type="deal.stageChange", payload=item, deal=deal,
        portal_id=change.portal_id, object_id=change.deal_id, occurred_at=updates["occurred_at"],
    )


def parse_body(raw: bytes, *, received_at: datetime) -> list[IncomingEvent]:
    """Decode and validate a webhook body; raise InvalidPayload naming the first problem found."""
    data = _decode(raw)
    if isinstance(data, dict):
        return [_internal_event(data, received_at)]
    if not isinstance(data, list):
        kind = type(data).__name__
        raise InvalidPayload(f"expected a JSON array of HubSpot events or one deal-stage object, got {kind}")
    if len(data) > MAX_EVENTS:
        raise InvalidPayload(f"{len(data)} events in one request; HubSpot sends at most {MAX_EVENTS}")
    events: dict[str, IncomingEvent] = {}
    for index, item in enumerate(data):
        event = _hubspot_event(item, index)
        events.setdefault(event.key, event)  # the same change twice in one batch is one event
    return list(events.values())
