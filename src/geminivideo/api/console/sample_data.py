"""Sample ads whose histories make the fatigue monitor propose changes: for demos, tests and the benchmark.

``seed_campaign`` writes a tenant, a campaign of active ads and 30 days of metrics: ads with a CTR that halves
in the last days (the monitor proposes a pause), or with a reported frequency past saturation (it proposes a
budget cut). ``fill_hourly_gate`` records executed changes in a campaign so its hourly gate is used up.
Nothing here proposes anything itself: run the real fatigue scan on the seeded data.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from geminivideo.contracts import utcnow
from geminivideo.db.models import Ad, AdDailyMetric, Tenant
from geminivideo.db.models.decisions import ChangeSource, ChangeStatus, ChangeType, PendingAdChange

DAYS = 30
DROP_DAYS = 4


def _day_row(ad_id: str, day: date, k: int, i: int, *, fatigued: bool, saturated: bool) -> dict[str, Any]:
    impressions = 4000 + 150 * (i % 7) + 40 * (k % 5)
    dropped = fatigued and k >= DAYS - DROP_DAYS
    ctr = 0.010 if dropped else 0.020 + 0.001 * ((i + k) % 3)
    cpm = 9.0 if dropped else 8.0 + 0.2 * (k % 4)
    return {"ad_id": ad_id, "day": day, "impressions": impressions, "clicks": round(impressions * ctr),
            "spend": round(impressions * cpm / 1000, 2), "reach": round(impressions / 1.3),
            "frequency": 4.2 if saturated else None, "conversions": 0, "budget": 100.0}


def seed_campaign(session: Session, tenant_id: str, campaign_id: str, n_ads: int, *, as_of: date,
                  saturated_every: int = 0, prefix: str = "") -> list[str]:
    """``n_ads`` active ads in one campaign with 30 days of metrics ending ``as_of``; their ids.

    Every ``saturated_every``-th ad (0: none) has a saturated frequency and a steady CTR; the others' CTR halves
    over the last four days.
    """
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(id=tenant_id, name=tenant_id))
        session.flush()
    ids = [f"{prefix or campaign_id}-ad-{i:04d}" for i in range(n_ads)]
    session.execute(insert(Ad), [{"id": ad, "tenant_id": tenant_id, "campaign_id": campaign_id, "name": ad,
                                  "status": "active", "daily_budget": 100.0} for ad in ids])
    start = as_of - timedelta(days=DAYS - 1)
    rows = []
    for i, ad in enumerate(ids):
        saturated = bool(saturated_every) and i % saturated_every == 0
        rows += [_day_row(ad, start + timedelta(days=k), k, i, fatigued=not saturated, saturated=saturated)
                 for k in range(DAYS)]
    session.execute(insert(AdDailyMetric), rows)
    return ids


def fill_hourly_gate(session: Session, tenant_id: str, campaign_id: str, count: int = 15) -> None:
    """``count`` paused ads of ``campaign_id`` with a pause executed a minute ago: the hourly gate is used up."""
    now = utcnow()
    ads = [f"{campaign_id}-done-{i:03d}" for i in range(count)]
    session.execute(insert(Ad), [{"id": ad, "tenant_id": tenant_id, "campaign_id": campaign_id, "name": ad,
                                  "status": "paused", "daily_budget": 50.0} for ad in ads])
    session.execute(insert(PendingAdChange), [{
        "tenant_id": tenant_id, "ad_id": ad, "campaign_id": campaign_id, "change_type": ChangeType.PAUSE.value,
        "current_value": "active", "requested_value": "paused", "reason": "sample: executed earlier",
        "source": ChangeSource.MANUAL.value, "evidence": {}, "status": ChangeStatus.EXECUTED.value,
        "created_at": now - timedelta(minutes=5), "updated_at": now, "decided_by": "sample",
        "decided_at": now - timedelta(minutes=4), "executed_at": now - timedelta(minutes=1), "attempts": 1,
        "result": {"client": "recording"},
    } for ad in ads])
