"""The metrics import's header matching and row parsing (pure: no database)."""

from __future__ import annotations

from datetime import date

import pytest

from geminivideo.errors import InvalidPayload
from geminivideo.ml.platforms.metrics_import import _Bad, column_map, fast_parser, parse_row

ADS_MANAGER = ["Reporting starts", "Reporting ends", "Campaign name", "Ad name", "Ad ID", "Day", "Impressions",
               "Reach", "Frequency", "Link clicks", "Clicks (all)", "Amount spent (EUR)", "Results"]


def fields(header: list[str], values: list[str]) -> dict[str, str]:
    return {f: values[i] for f, i in column_map(header).items()}


def test_ads_manager_headers_map_to_the_project_fields() -> None:
    columns = column_map(ADS_MANAGER)
    assert columns["ad_id"] == 4 and columns["day"] == 5 and columns["clicks"] == 9, "link clicks win over all"
    assert columns["spend"] == 11 and columns["conversions"] == 12 and columns["campaign_name"] == 2
    assert column_map(["\ufeffAD_ID", "date", "impressions", "clicks", "spend"])["ad_id"] == 0


def test_a_missing_column_names_what_would_be_accepted() -> None:
    with pytest.raises(InvalidPayload, match=r"no column for ad_id, spend .*'Ad ID'|no column for ad_id, spend"):
        column_map(["Day", "Impressions", "Link clicks"])


@pytest.mark.parametrize("values", [
    ["2026-05-01", "2026-05-01", "Sale", "Ad 1", "123", "2026-05-01", "1000", "900", "1.1", "12", "20", "5.5", "2"],
    ["2026-05-01", "2026-05-01", "Sale", " Ad 1 ", "123", "2026-05-01", "1000", "", "", "0", "0", "0", ""],
])
def test_the_fast_parser_agrees_with_the_full_one(values: list[str]) -> None:
    fast = fast_parser(column_map(ADS_MANAGER))(7, values)
    assert fast is not None and fast == parse_row(7, fields(ADS_MANAGER, values))


@pytest.mark.parametrize(("changes", "reason"), [
    ({6: "1,000"}, None),  # thousands separators: the full parser takes it
    ({11: "$5.50"}, None),
    ({6: "-3"}, "impressions = -3 is negative"),
    ({9: "2000"}, "clicks (2000) exceed impressions (1000)"),
    ({5: "01/05/2026"}, "day = '01/05/2026' is not a date; expected YYYY-MM-DD"),
    ({1: "2026-05-07"}, "the row covers 2026-05-01 to 2026-05-07"),
    ({11: "inf"}, "spend = inf must be a finite number >= 0"),
    ({4: ""}, "ad_id is empty"),
    ({3: "Ad\x00"}, "a text column holds a NUL character"),
])
def test_rows_the_fast_parser_leaves_to_the_full_one(changes: dict[int, str], reason: str | None) -> None:
    values = ["2026-05-01", "2026-05-01", "Sale", "Ad 1", "123", "2026-05-01", "1000", "900", "1.1", "12", "20",
              "5.5", "2"]
    for index, value in changes.items():
        values[index] = value
    assert fast_parser(column_map(ADS_MANAGER))(3, values) is None
    if reason is None:
        row = parse_row(3, fields(ADS_MANAGER, values))
        assert row[2] == date(2026, 5, 1) and row[3] == 1000
    else:
        with pytest.raises(_Bad, match=reason.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
            parse_row(3, fields(ADS_MANAGER, values))
