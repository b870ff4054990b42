"""Fixtures for winner-index tests: a private index directory and a tenant of ads that cleans up after itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from geminivideo.db.models import Ad, AdDailyMetric, AdSamplerState, Tenant
from geminivideo.db.session import session_scope
from geminivideo.ml.winners import service as winners
from tests.support.env import applied

# Three creatives of the issue: the first two are close in meaning, the third is far from both.
UGC = {"hook_type": "UGC testimonial", "pacing": "fast cuts", "cta_style": "green text CTA", "format": "9:16"}
REVIEW = {"hook_type": "user-generated review", "pacing": "quick edits", "format": "1:1"}
CINEMATIC = {
    "hook_type": "cinematic slow product shot",
    "pacing": "slow",
    "visual_style": "studio lighting",
    "format": "16:9",
}


@pytest.fixture
def index_dir(tmp_path: Path) -> Iterator[Path]:
    """WINNER_INDEX_PATH for this test only (this process; pass it to workers explicitly)."""
    path = tmp_path / "winner_index"
    with applied({"WINNER_INDEX_PATH": str(path)}):
        yield path


@dataclass
class Shop:
    """One tenant's ads in the database under test; every ad id starts with the tenant id."""

    tenant_id: str
    ads: list[str] = field(default_factory=list)

    def ad(
        self,
        name: str,
        *,
        spend: float,
        value: float,
        impressions: int = 5000,
        clicks: int = 100,
        dna: dict[str, Any] | None = None,
    ) -> str:
        """An ad with one day of metrics, credited pipeline value and, optionally, creative DNA."""
        ad_id = f"{self.tenant_id}-{name}"
        with session_scope() as session:
            session.add(Ad(id=ad_id, tenant_id=self.tenant_id, campaign_id=f"{self.tenant_id}-c1", name=name))
            session.flush()
            session.add(
                AdDailyMetric(ad_id=ad_id, day=date(2025, 3, 1), impressions=impressions, clicks=clicks, spend=spend)
            )
            session.add(AdSamplerState(ad_id=ad_id, pipeline_value=value))
            if dna is not None:
                winners.store_dna(session, ad_id, dna)
        self.ads.append(ad_id)
        return ad_id

    def add_day(self, ad_id: str, *, spend: float, impressions: int = 1000, clicks: int = 20, day: int = 1) -> None:
        with session_scope() as session:
            session.add(
                AdDailyMetric(
                    ad_id=ad_id,
                    day=date(2025, 3, 1) + timedelta(days=day),
                    impressions=impressions,
                    clicks=clicks,
                    spend=spend,
                )
            )


def _new_tenant(tenant_id: str) -> None:
    with session_scope() as session:
        session.add(Tenant(id=tenant_id, name=tenant_id))


def _remove_tenant(tenant_id: str) -> None:
    # ON DELETE CASCADE takes metrics, sampler state, DNA, index entries and thresholds with the ads.
    with session_scope() as session:
        session.execute(delete(Ad).where(Ad.tenant_id == tenant_id))
        session.execute(delete(Tenant).where(Tenant.id == tenant_id))


@pytest.fixture
def shop_factory(database_url: str) -> Iterator[Any]:
    """Make tenants (unique per test) in the database under test; all are removed afterwards."""
    made: list[Shop] = []

    def make() -> Shop:
        shop = Shop(f"w{uuid.uuid4().hex[:10]}")
        _new_tenant(shop.tenant_id)
        made.append(shop)
        return shop

    yield make
    for shop in made:
        _remove_tenant(shop.tenant_id)


@pytest.fixture
def shop(shop_factory: Any) -> Shop:
    return shop_factory()
