"""Synthetic revenue: per-tenant deal pipelines and the credit one stage change is worth.

A stage is worth ``amount × probability`` or a fixed value. A change credits the difference between
the deal's new value and the value already credited, so backward moves and closed-lost give negative
credit and the credits of a deal always add up to its current expected value (less the value it
already had when we first saw it, when that first event names a ``stageFrom``).
"""

from __future__ import annotations

from dataclasses import dataclass

from geminivideo.contracts import PipelineConfig, PipelineStage
from geminivideo.errors import InvalidPayload

HUBSPOT_DEFAULT = PipelineConfig(
    stages={
        "appointmentscheduled": PipelineStage(probability=0.2),
        "qualifiedtobuy": PipelineStage(probability=0.4),
        "presentationscheduled": PipelineStage(probability=0.6),
        "decisionmakerboughtin": PipelineStage(probability=0.8),
        "contractsent": PipelineStage(probability=0.9),
        "closedwon": PipelineStage(probability=1.0, won=True),
        "closedlost": PipelineStage(probability=0.0),
    },
    average_deal_value=10_000.0,
    entry_stage="appointmentscheduled",
)

# The seed's service-business template: fixed values per stage, no deal amount needed.
SERVICE_BUSINESS = PipelineConfig(
    stages={
        "lead": PipelineStage(value=0.0),
        "appointment_scheduled": PipelineStage(value=2_250.0),
        "show_up": PipelineStage(value=9_000.0),
        "closed_won": PipelineStage(value=15_000.0, won=True),
        "closed_lost": PipelineStage(value=0.0),
    },
    average_deal_value=15_000.0,
    entry_stage="lead",
)

TEMPLATES: dict[str, PipelineConfig] = {"hubspot_default": HUBSPOT_DEFAULT, "service_business": SERVICE_BUSINESS}
DEFAULT_TEMPLATE = "hubspot_default"


def stage_rule(pipeline: PipelineConfig, stage: str, *, tenant_id: str = "") -> PipelineStage:
    rule = pipeline.stages.get(stage)
    if rule is None:
        whose = f" of tenant {tenant_id!r}" if tenant_id else ""
        known = sorted(pipeline.stages)
        raise InvalidPayload(f"stageTo: {stage!r} is not a stage of the pipeline{whose}; known: {known}")
    return rule


def stage_value(pipeline: PipelineConfig, stage: str, amount: float, *, tenant_id: str = "") -> float:
    """The synthetic value of a deal of ``amount`` sitting at ``stage``."""
    rule = stage_rule(pipeline, stage, tenant_id=tenant_id)
    if rule.value is not None:
        return rule.value
    assert rule.probability is not None  # PipelineStage guarantees exactly one rule
    return round(amount * rule.probability, 6)


@dataclass(frozen=True)
class DealBook:
    """What has been applied to a deal so far (``None`` for a deal never seen)."""

    stage: str
    expected_value: float
    credited_value: float
    opening_value: float
    won: bool
    cash_credited: float


@dataclass(frozen=True)
class Credit:
    """The outcome of one stage change for a deal."""

    stage_from: str | None
    stage_to: str
    synthetic_value: float  # the deal's value at stage_to
    credit: float  # change in expected value
    cash_credit: float  # change in closed-won money
    won: bool
    book: DealBook  # the deal's book after this change


def apply_change(
    pipeline: PipelineConfig,
    *,
    prior: DealBook | None,
    stage_to: str,
    amount: float,
    stage_from_hint: str | None = None,
    tenant_id: str = "",
) -> Credit:
    """Credit moving a deal to ``stage_to`` at ``amount``.

    A known deal starts from its book (the event's ``stageFrom`` cannot override what was credited);
    an unseen deal starts from ``stage_from_hint``'s value, or from nothing.
    """
    new_value = stage_value(pipeline, stage_to, amount, tenant_id=tenant_id)
    won = stage_rule(pipeline, stage_to, tenant_id=tenant_id).won
    stage_from: str | None
    if prior is not None:
        stage_from, base, opening, credited, cash = (
            prior.stage, prior.expected_value, prior.opening_value, prior.credited_value, prior.cash_credited,
        )
    else:
        stage_from = stage_from_hint
        opening = stage_value(pipeline, stage_from_hint, amount, tenant_id=tenant_id) if stage_from_hint else 0.0
        base, credited, cash = opening, 0.0, 0.0
    credit = round(new_value - base, 6)
    cash_target = amount if won else 0.0
    cash_credit = round(cash_target - cash, 6)
    book = DealBook(
        stage=stage_to,
        expected_value=new_value,
        credited_value=round(credited + credit, 6),
        opening_value=opening,
        won=won,
        cash_credited=cash_target,
    )
    return Credit(stage_from, stage_to, new_value, credit, cash_credit, won, book)
