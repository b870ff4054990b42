"""Per-tenant winner thresholds stored in SQL decide what the rebuild keeps, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from geminivideo.errors import InvalidPayload
from geminivideo.ml.winners import service as winners
from tests.integration.winners.conftest import REVIEW, UGC


def test_a_tenant_with_stricter_thresholds_loses_its_winner_at_the_next_rebuild(
    shop_factory: Any, index_dir: Path
) -> None:
    strict, lenient = shop_factory(), shop_factory()
    strict_ad = strict.ad("roas5", spend=200, value=1000, dna=UGC)  # ROAS 5.0
    lenient_ad = lenient.ad("roas5", spend=200, value=1000, dna=REVIEW)
    assert winners.index_all_winners().added == 2

    assert winners.set_thresholds(strict.tenant_id, min_roas=6.0) == winners.Thresholds(min_roas=6.0)
    rebuilt = winners.index_all_winners()

    assert (rebuilt.removed, rebuilt.unchanged, rebuilt.total) == (1, 1, 1)
    assert [hit.ad_id for hit in winners.search("testimonial review", k=5)] == [lenient_ad]
    # Only the named threshold changed; the others keep their values.
    assert winners.set_thresholds(strict.tenant_id, min_spend=50.0) == winners.Thresholds(min_roas=6.0, min_spend=50.0)
    assert strict_ad not in [hit.ad_id for hit in winners.search("testimonial", k=5)]


@pytest.mark.parametrize(
    ("values", "says"),
    [({"min_roi": 2.0}, "unknown threshold(s) min_roi"), ({"min_roas": -1.0}, "must be >= 0")],
)
def test_bad_thresholds_are_refused(shop_factory: Any, values: dict[str, float], says: str) -> None:
    shop = shop_factory()
    with pytest.raises(InvalidPayload, match=says.replace("(", r"\(").replace(")", r"\)")):
        winners.set_thresholds(shop.tenant_id, **values)


def test_thresholds_need_an_existing_tenant(database_url: str) -> None:
    with pytest.raises(InvalidPayload, match="no such tenant"):
        winners.set_thresholds("no-such-tenant", min_roas=2.0)
