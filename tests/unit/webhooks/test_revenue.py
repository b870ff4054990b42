"""Synthetic revenue: stage values, credits of forward and backward moves, and the cumulative invariant."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geminivideo.contracts import PipelineConfig, PipelineStage
from geminivideo.errors import InvalidPayload
from geminivideo.ml.webhooks.revenue import HUBSPOT_DEFAULT, SERVICE_BUSINESS, DealBook, apply_change, stage_value


def walk(pipeline: PipelineConfig, stages: list[tuple[str, float]], first_from: str | None = None) -> list[float]:
    book: DealBook | None = None
    credits = []
    for index, (stage, amount) in enumerate(stages):
        change = apply_change(pipeline, prior=book, stage_to=stage, amount=amount,
                              stage_from_hint=first_from if index == 0 else None)
        credits.append(change.credit)
        book = change.book
    return credits


def test_hubspot_default_probabilities() -> None:
    expected = {"appointmentscheduled": 0.2, "qualifiedtobuy": 0.4, "presentationscheduled": 0.6,
                "decisionmakerboughtin": 0.8, "contractsent": 0.9, "closedwon": 1.0, "closedlost": 0.0}
    assert {s: stage_value(HUBSPOT_DEFAULT, s, 1.0) for s in expected} == expected


def test_service_business_template_fixed_values() -> None:
    values = {s: stage_value(SERVICE_BUSINESS, s, 123.0) for s in SERVICE_BUSINESS.stages}
    assert values == {"lead": 0, "appointment_scheduled": 2250, "show_up": 9000, "closed_won": 15000, "closed_lost": 0}


def test_walk_to_closed_lost_sums_to_zero() -> None:
    stages = [("appointmentscheduled", 10_000.0), ("contractsent", 10_000.0), ("closedlost", 10_000.0)]
    credits = walk(HUBSPOT_DEFAULT, stages)
    assert credits == [2_000, 7_000, -9_000]
    assert sum(credits) == 0


def test_backward_move_gives_negative_credit() -> None:
    assert walk(HUBSPOT_DEFAULT, [("contractsent", 1_000), ("qualifiedtobuy", 1_000)]) == [900, -500]


def test_first_event_with_stage_from_credits_the_difference() -> None:
    assert walk(HUBSPOT_DEFAULT, [("closedwon", 10_000)], first_from="contractsent") == [1_000]


def test_a_known_deal_is_credited_from_its_book_not_the_events_stage_from() -> None:
    first = apply_change(HUBSPOT_DEFAULT, prior=None, stage_to="qualifiedtobuy", amount=100)
    second = apply_change(HUBSPOT_DEFAULT, prior=first.book, stage_to="closedwon", amount=100,
                          stage_from_hint="contractsent")
    assert second.stage_from == "qualifiedtobuy" and second.credit == 60


def test_won_and_cash_follow_closed_won() -> None:
    won = apply_change(HUBSPOT_DEFAULT, prior=None, stage_to="closedwon", amount=500)
    assert won.won and won.cash_credit == 500
    reopened = apply_change(HUBSPOT_DEFAULT, prior=won.book, stage_to="contractsent", amount=500)
    assert not reopened.won and reopened.cash_credit == -500 and reopened.credit == -50


def test_unknown_stage_names_the_stage_and_the_known_ones() -> None:
    with pytest.raises(InvalidPayload, match=r"stageTo: 'closed_won' is not a stage.*'closedwon'"):
        apply_change(HUBSPOT_DEFAULT, prior=None, stage_to="closed_won", amount=1)


def test_pipeline_stage_needs_exactly_one_rule() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PipelineStage(probability=0.5, value=10)


_STAGES = sorted(HUBSPOT_DEFAULT.stages)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_STAGES), st.floats(0, 1e7, allow_nan=False)), min_size=1, max_size=12),
    st.none() | st.sampled_from(_STAGES),
)
def test_cumulative_credit_equals_current_expected_value(
    steps: list[tuple[str, float]], first_from: str | None
) -> None:
    credits = walk(HUBSPOT_DEFAULT, steps, first_from)
    last_stage, last_amount = steps[-1]
    opening = stage_value(HUBSPOT_DEFAULT, first_from, steps[0][1]) if first_from else 0.0
    assert sum(credits) == pytest.approx(stage_value(HUBSPOT_DEFAULT, last_stage, last_amount) - opening, abs=1e-3)
