"""Liveness and dependency checks: ``GET /health`` answers 200 when Redis, the database and the broker
answer, 503 naming the one that does not (load balancers and compose healthchecks read the status code)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool
from kombu import Connection
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from geminivideo import __version__
from geminivideo.config import get_settings
from geminivideo.db.session import get_engine
from geminivideo.redis_client import get_redis

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 3.0


class Check(BaseModel):
    ok: bool
    latency_ms: float
    detail: str


class HealthReport(BaseModel):
    status: str  # "ok" or "degraded"
    version: str
    checks: dict[str, Check]


def _redis() -> str:
    get_redis().ping()
    return "PING answered"


def _database() -> str:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
        try:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:  # reachable but not migrated is still worth saying
            return "reachable, not migrated (run: geminivideo db upgrade)"
    return f"reachable, schema at {revision}"


def _broker() -> str:
    settings = get_settings()
    with Connection(settings.broker_url, connect_timeout=CHECK_TIMEOUT_S) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2, timeout=CHECK_TIMEOUT_S)
        return f"{conn.transport_cls} transport connected"


def _run(probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # any failure is the answer of a health check
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(ok=ok, latency_ms=round((time.perf_counter() - started) * 1000, 1), detail=detail)


@router.get("/health")
async def health(response: Response) -> HealthReport:
    """Redis, database and broker reachability; 503 when any of them fails."""
    checks = {name: await run_in_threadpool(_run, probe)
              for name, probe in (("redis", _redis), ("database", _database), ("broker", _broker))}
    healthy = all(check.ok for check in checks.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthReport(status="ok" if healthy else "degraded", version=__version__, checks=checks)
