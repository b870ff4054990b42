"""Fixtures of the platform tests: the Graph API stand-in, and ML workers pointed at it on a private queue."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from geminivideo.db.session import session_scope
from geminivideo.ml.decisions.datagen import ensure_tenant
from geminivideo.procs import ManagedProcess
from tests.support.meta_graph import GraphState, graph_standin

MetaWorker = Callable[..., tuple[str, ManagedProcess]]


@pytest.fixture
def graph() -> Iterator[tuple[str, GraphState]]:
    with graph_standin() as served:
        yield served


@pytest.fixture
def tenant(database_url: str) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        ensure_tenant(session, tenant_id)
    return tenant_id


def meta_env(base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """Settings that point the Meta adapter at the stand-in, fast enough for tests."""
    return {"DATABASE_URL": database_url, "META_GRAPH_URL": base_url, "META_ACCESS_TOKEN": "test-token",
            "META_POLL_INTERVAL_S": "0.1", "META_THROTTLE_WAIT_S": "0.4", **extra}


@pytest.fixture
def meta_worker(start_worker, graph: tuple[str, GraphState], database_url: str) -> MetaWorker:  # type: ignore[no-untyped-def]
    """Start an ML worker on a private queue with the Meta settings (plus ``extra``); return queue and process."""

    def _start(concurrency: int = 1, **extra: str) -> tuple[str, ManagedProcess]:
        queue = f"meta-{uuid.uuid4().hex[:8]}"
        proc = start_worker("ml", queues=[queue], concurrency=concurrency, name="meta",
                            **meta_env(graph[0], database_url, **extra))
        return queue, proc

    return _start


def recent_days(n: int) -> list[str]:
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=k)).isoformat() for k in range(n - 1, -1, -1)]
