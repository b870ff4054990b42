"""Meta adapter helpers: usage headers, insight rows, currency units, account lists."""

from __future__ import annotations

import json

import pytest

from geminivideo.errors import PermanentError
from geminivideo.ml.platforms.meta import Pacer, insight_record, read_usage, to_minor_units
from geminivideo.ml.platforms.sync import parse_accounts


def test_usage_is_the_highest_percentage_and_the_regain_time_in_seconds() -> None:
    headers = {
        "x-business-use-case-usage": json.dumps({"42": [{"type": "ads_insights", "call_count": 12, "total_cputime": 96,
                                                        "total_time": 30, "estimated_time_to_regain_access": 3}]}),
        "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 40.5, "reset_time_duration": 120}),
    }
    usage = read_usage(headers)
    assert (usage.pct, usage.regain_s) == (96, 180)
    assert read_usage({"X-Ad-Account-Usage": "not json"}).pct == 0


def test_the_pacer_spaces_calls_as_usage_climbs() -> None:
    slept: list[float] = []
    pacer = Pacer(wait_s=10, sleep=slept.append)
    for pct in (10, 80, 95):
        pacer.after(read_usage({"X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": pct})}))
    assert slept == [0.5, 2.5] and pacer.summary()["max_usage_pct"] == 95


def test_insight_rows_become_import_records() -> None:
    record = insight_record({"ad_id": "1", "date_start": "2026-05-01", "date_stop": "2026-05-01",
                             "impressions": "100", "spend": "1.5",
                             "actions": [{"action_type": "purchase", "value": "2"},
                                         {"action_type": "lead", "value": "1"},
                                         {"action_type": "link_click", "value": "9"}]})
    assert record["clicks"] == 0 and record["conversions"] == 3 and record["day"] == "2026-05-01"


def test_minor_units_and_accounts() -> None:
    assert to_minor_units(90.0, "USD") == 9000 and to_minor_units(1234.4, "JPY") == 1234
    assert parse_accounts(["act_1:shop", "22"]) == [("act_1", "shop"), ("act_22", "default")]
    with pytest.raises(PermanentError, match="not an ad account id"):
        parse_accounts(["shop"])
