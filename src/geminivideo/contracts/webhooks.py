"""HubSpot webhook payloads (DESIGN.md §6): deal stage changes, HubSpot's events, clicks, pipelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from geminivideo.contracts.base import Payload, refuse_nul, utcnow

# ─── ML: HubSpot webhooks ─────────────────────────────────────────────────────────────────────────
MAX_CLOCK_SKEW_S = 24 * 3600


def _epoch_millis(value: Any) -> Any:
    """HubSpot sends epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):  # beyond what a datetime holds: an invalid value, not a 500
            raise ValueError(f"epoch milliseconds {value!r} are out of range for a date") from None
    return value


def _aware(value: datetime) -> datetime:
    """A time without a zone (an ISO string or datetime without offset) is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _ip_address_or_none(value: str) -> str | None:
    if value == "":
        return None
    import ipaddress  # stdlib, cheap; kept local so the module's import list stays pydantic-only

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


# Shared by the webhook and click models: epoch milliseconds or ISO (naive = UTC); an IP address ("" = none).
EventTime = Annotated[datetime, BeforeValidator(_epoch_millis), AfterValidator(_aware)]
IpAddress = Annotated[str, Field(max_length=64), AfterValidator(_ip_address_or_none)]


class DealStageChange(Payload):
    """The internal single-object webhook payload of the seed (one deal-stage change).

    HubSpot events are normalised to this shape too (``portalId``, ``isCreation``, ``eventKey`` set by
    the ingestion endpoint). ``stageTo`` may only be missing on a deal creation, whose stage then comes
    from the CRM or the pipeline's entry stage.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    deal_id: str = Field(alias="dealId", min_length=1, max_length=128)
    stage_to: str | None = Field(None, alias="stageTo", min_length=1, max_length=128)
    stage_from: str | None = Field(None, alias="stageFrom", max_length=128)
    deal_value: float | None = Field(None, alias="dealValue", ge=0, le=1e12)
    tenant_id: str = Field("default", alias="tenantId", min_length=1, max_length=128)
    occurred_at: EventTime | None = Field(None, alias="occurredAt")
    click_id: str | None = Field(None, max_length=512)
    fbclid: str | None = Field(None, max_length=512)
    gclid: str | None = Field(None, max_length=512)
    fingerprint_hash: str | None = Field(None, max_length=128)
    ip_address: IpAddress | None = None
    user_agent: str | None = Field(None, max_length=1024)
    attributed_spend: float | None = Field(None, ge=0)
    event_key: str | None = Field(None, alias="eventKey", max_length=256)
    portal_id: int | None = Field(None, alias="portalId", ge=0)
    is_creation: bool = Field(False, alias="isCreation")

    @model_validator(mode="after")
    def _stage_known(self) -> DealStageChange:
        if self.stage_to is None and not self.is_creation:
            raise ValueError("stageTo is required (the deal stage the deal moved to, e.g. 'closedwon')")
        # A change dated far ahead would make every real later change look out of order.
        if self.occurred_at is not None and (self.occurred_at - utcnow()).total_seconds() > MAX_CLOCK_SKEW_S:
            raise ValueError(f"occurredAt {self.occurred_at.isoformat()} is more than a day in the future")
        return self


class HubSpotEvent(BaseModel):
    """One element of HubSpot's webhook array (v3 webhooks API; legacy ``eventType`` accepted too).

    Unknown fields are kept: HubSpot adds fields over time, and refusing them would make it retry.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event_id: int | str | None = Field(None, alias="eventId")
    subscription_id: int | None = Field(None, alias="subscriptionId")
    portal_id: int = Field(alias="portalId", ge=0)
    app_id: int | None = Field(None, alias="appId")
    occurred_at: int = Field(alias="occurredAt", ge=0, description="epoch milliseconds")
    subscription_type: str | None = Field(None, alias="subscriptionType", max_length=128)
    event_type: str | None = Field(None, alias="eventType", max_length=128)
    attempt_number: int | None = Field(None, alias="attemptNumber", ge=0)
    object_id: int | str = Field(alias="objectId")
    object_type_id: str | None = Field(None, alias="objectTypeId", max_length=32)
    property_name: str | None = Field(None, alias="propertyName", max_length=256)
    property_value: str | None = Field(None, alias="propertyValue", max_length=4096)
    change_source: str | None = Field(None, alias="changeSource", max_length=128)

    # Unknown (extra) fields keep any character: they are stored as received in a JSON column.
    _no_nul = field_validator("*")(refuse_nul)

    @model_validator(mode="after")
    def _has_kind(self) -> HubSpotEvent:
        if not (self.subscription_type or self.event_type):
            raise ValueError("subscriptionType (or legacy eventType) is required")
        return self

    @property
    def kind(self) -> str:
        return str(self.subscription_type or self.event_type)


class TrackClick(Payload):
    """A click on an ad's link, recorded for attribution (``POST /api/ml/attribution/track-click``)."""

    ad_id: str = Field(min_length=1, max_length=128)
    campaign_id: str | None = Field(None, max_length=128)
    tenant_id: str | None = Field(None, max_length=128)
    click_id: str | None = Field(None, max_length=512)
    fbclid: str | None = Field(None, max_length=512)
    gclid: str | None = Field(None, max_length=512)
    fingerprint: dict[str, str | int | float | bool | None] | None = Field(None, max_length=64)
    fingerprint_hash: str | None = Field(None, max_length=128)
    ip_address: IpAddress | None = None
    user_agent: str | None = Field(None, max_length=1024)
    utm_source: str | None = Field(None, max_length=256)
    utm_medium: str | None = Field(None, max_length=256)
    utm_campaign: str | None = Field(None, max_length=256)
    utm_content: str | None = Field(None, max_length=256)
    utm_term: str | None = Field(None, max_length=256)
    timestamp: EventTime | None = None

    @model_validator(mode="after")
    def _identifiable(self) -> TrackClick:
        if self.fingerprint is not None and self.fingerprint_hash is not None:
            raise ValueError("give fingerprint (components, hashed here) or fingerprint_hash, not both")
        has_id = any((self.click_id, self.fbclid, self.gclid, self.fingerprint, self.fingerprint_hash))
        if not has_id and not (self.ip_address and self.user_agent):
            raise ValueError("a click needs click_id, fbclid, gclid, a fingerprint, or ip_address with user_agent")
        return self


class SamplerFeedback(Payload):
    """External outcome feedback for one ad (``POST /api/ml/battle-hardened/feedback``)."""

    ad_id: str = Field(min_length=1, max_length=128)
    pipeline_value: float = Field(0.0, ge=-1e12, le=1e12)
    cash_revenue: float = Field(0.0, ge=-1e12, le=1e12)
    conversions: int = Field(0, ge=-1_000_000, le=1_000_000)
    feedback_id: str | None = Field(None, min_length=1, max_length=128, description="idempotency key")


class PipelineStage(Payload):
    """One deal stage: a probability of the deal amount, or a fixed value; ``won`` marks closed-won."""

    probability: float | None = Field(None, ge=0, le=1)
    value: float | None = Field(None, ge=0, le=1e12)
    won: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> PipelineStage:
        if (self.probability is None) == (self.value is None):
            raise ValueError("give exactly one of probability (0-1) or value (fixed amount)")
        return self


class PipelineConfig(Payload):
    """A tenant's deal pipeline: stage id → rule, plus the amount used when a deal has none."""

    stages: dict[str, PipelineStage] = Field(min_length=1, max_length=200)
    average_deal_value: float = Field(ge=0, le=1e12)
    entry_stage: str | None = Field(None, max_length=128)
    portal_id: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _entry_known(self) -> PipelineConfig:
        if self.entry_stage is not None and self.entry_stage not in self.stages:
            raise ValueError(f"entry_stage {self.entry_stage!r} is not one of the stages {sorted(self.stages)}")
        return self


class WebhookResult(BaseModel):
    status: str  # processed, stale (older than the deal's last change), duplicate
    synthetic_revenue: float
    attribution: dict[str, Any] | None
    ad_id: str | None
    deal_id: str | None = None
    credit: float = 0.0
    event_key: str | None = None
    tenant_id: str | None = None
    stage_from: str | None = None
    stage_to: str | None = None
    amount: float | None = None
    amount_source: str | None = None
    note: str | None = None
