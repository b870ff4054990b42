"""Fixtures of the decisions tests: a fresh tenant per test (the session databases are shared), its ads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from geminivideo.db.models import Ad
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions.datagen import ensure_tenant

MakeCampaign = Callable[..., list[str]]


@pytest.fixture
def tenant(database_url: str) -> str:
    """A tenant of its own on the database in use (DATABASE_URL is set by ``database_url``)."""
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        ensure_tenant(session, tenant_id)
    return tenant_id


@pytest.fixture
def make_campaign(tenant: str) -> MakeCampaign:
    """Create a campaign of ``n`` active ads with ``budget`` each; return the ad ids."""

    def _make(n: int, budget: float = 100.0, *, name: str = "cmp") -> list[str]:
        campaign = f"{tenant}-{name}-{uuid.uuid4().hex[:6]}"
        ids = [f"{campaign}-ad{i:02d}" for i in range(n)]
        with session_scope() as session:
            for ad_id in ids:
                session.add(Ad(id=ad_id, tenant_id=tenant, campaign_id=campaign, name=ad_id, status="active",
                               daily_budget=budget, launched_at=datetime.now(UTC) - timedelta(days=10)))
        return ids

    return _make
