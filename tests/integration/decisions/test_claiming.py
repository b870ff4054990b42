"""SKIP LOCKED claiming on PostgreSQL: locked rows are skipped, not waited for, and two workers running the
executor task at once execute every approved change exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from geminivideo.contracts import utcnow
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import AdPlatformCall, ChangeType, PendingAdChange
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals
from geminivideo.ml.decisions.datagen import ensure_tenant
from geminivideo.ml.tasks import execute_approved_changes
from tests.conftest import StartWorker
from tests.support.env import applied


@pytest.fixture
def pg_tenant(postgres_url: str) -> Iterator[str]:
    with applied({"DATABASE_URL": postgres_url}):
        tenant = f"claim-{uuid.uuid4().hex[:8]}"
        with session_scope() as session:
            ensure_tenant(session, tenant)
        yield tenant


def approved_changes(tenant: str, n: int) -> list[int]:
    """n approved pause proposals, each ad in a campaign of its own (so no gate interferes)."""
    with session_scope() as session:
        for i in range(n):
            session.add(Ad(id=f"{tenant}-ad{i:03d}", tenant_id=tenant, campaign_id=f"{tenant}-c{i:03d}", name="x",
                           status="active", daily_budget=50, launched_at=datetime.now(UTC) - timedelta(days=5)))
    ids = []
    for i in range(n):
        view = approvals.propose_change(f"{tenant}-ad{i:03d}", ChangeType.PAUSE, None, reason="claim test")
        assert view is not None
        ids.append(approvals.approve_change(view.id, "ops").id)
    return ids


def test_a_claimer_skips_rows_another_transaction_holds(pg_tenant: str) -> None:
    ids = set(approved_changes(pg_tenant, 10))
    with session_scope() as holder:
        held = set(approvals.claim_approved(holder, 5, "holder", utcnow())) & ids
        assert held  # this transaction keeps its row locks open while the other claimer runs
        with session_scope() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting instead of skipping would fail here
            got = set(approvals.claim_approved(other, 1000, "other", utcnow())) & ids
    assert got and not held & got and held | got == ids


@pytest.mark.slow
def test_two_workers_execute_each_approved_change_exactly_once(
    postgres_url: str, pg_tenant: str, start_worker: StartWorker
) -> None:
    with applied({"DATABASE_URL": postgres_url}):
        ids = approved_changes(pg_tenant, 40)
        queue = f"claim-{uuid.uuid4().hex[:8]}"
        for name in ("exec-a", "exec-b"):
            start_worker("ml", queues=[queue], concurrency=2, name=name, DATABASE_URL=postgres_url)
        results = [execute_approved_changes.apply_async(kwargs={"limit": 4}, queue=queue) for _ in range(14)]
        claimed = [change for r in results for change in r.get(timeout=120)["change_ids"]]
        with session_scope() as session:
            statuses = Counter(session.scalars(select(PendingAdChange.status).where(PendingAdChange.id.in_(ids))))
            calls = Counter(session.scalars(select(AdPlatformCall.change_id).where(AdPlatformCall.change_id.in_(ids))))
            owners = session.scalar(select(func.count(func.distinct(PendingAdChange.claimed_by)))
                                    .where(PendingAdChange.id.in_(ids)))
    mine = [c for c in claimed if c in set(ids)]
    assert sorted(mine) == sorted(ids), "every change claimed once, none twice"
    assert statuses == {"executed": 40}
    assert set(calls.values()) == {1} and len(calls) == 40, "one platform call per change"
    assert owners and owners > 1, "the work was spread over several claims"
