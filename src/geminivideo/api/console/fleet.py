"""The fleet page: workers per host with their queues and active tasks, queue depths, each host's resource
snapshot, and the beats with when each schedule last fired. The page refreshes itself.

Worker replies come from Celery's ``inspect`` with a bounded timeout; queue depths from ``client.queue_lengths``
(every priority level summed on Redis); snapshots from ``system_resources:<host>``; beats from RedBeat's keys
(``redbeat:<app>::lock`` held by the live beat, ``redbeat:<app>:<entry>`` with each entry's last run).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from redbeat.decoder import RedBeatJSONDecoder

from geminivideo import client
from geminivideo.api.console.rendering import render
from geminivideo.api.console.sessions import ConsoleSession, require_session
from geminivideo.client import QueueInfo, WorkerInfo
from geminivideo.errors import DependencyUnavailable
from geminivideo.redis_client import get_redis
from geminivideo.video.housekeeping.resources import SNAPSHOT_KEY

router = APIRouter()
INSPECT_TIMEOUT_S = 1.0
CACHE_S = 3.0  # several open fleet pages refreshing share one round of inspect broadcasts
REFRESH_S = 10
MAX_HOSTS = 200


@dataclass
class Host:
    name: str
    workers: list[WorkerInfo] = field(default_factory=list)
    resources: dict[str, Any] | None = None


@dataclass
class Beat:
    app: str
    alive: bool
    lock_ttl_s: int | None
    entries: list[dict[str, Any]]


@dataclass
class Fleet:
    hosts: list[Host]
    queues: list[QueueInfo]
    beats: list[Beat]
    errors: list[str]
    taken_at: datetime


def _host_of(worker: str) -> str:
    return worker.split("@", 1)[1] if "@" in worker else worker


def resource_snapshots(r: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every host's latest snapshot (``system_resources:<host>``), by host name."""
    found: dict[str, dict[str, Any]] = {}
    for key in r.scan_iter(match=f"{SNAPSHOT_KEY}:*", count=200):
        if len(found) >= MAX_HOSTS:
            break
        raw = r.get(key)
        if raw:
            try:
                found[str(key).split(":", 1)[1]] = json.loads(raw)
            except ValueError:
                continue
    return found


def _last_run(r: redis.Redis, app: str, name: str) -> tuple[datetime | None, int | None]:
    raw = r.hget(f"redbeat:{app}:{name}", "meta")
    if not raw:
        return None, None
    meta = json.loads(str(raw), cls=RedBeatJSONDecoder)
    last = meta.get("last_run_at")
    if isinstance(last, datetime) and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return (last if isinstance(last, datetime) else None), meta.get("total_run_count")


def beats(r: redis.Redis) -> list[Beat]:
    """Each app's beat (alive while it holds RedBeat's lock) and its schedules with their last run."""
    out = []
    for app_name, app in (("ml", client.ml_app()), ("video", client.video_app())):
        ttl = int(r.pttl(f"redbeat:{app_name}::lock"))
        entries = []
        for name, entry in sorted((app.conf.beat_schedule or {}).items()):
            last, count = _last_run(r, app_name, name)
            entries.append({"name": name, "task": entry.get("task"), "schedule": str(entry.get("schedule")),
                            "last_run_at": last, "runs": count})
        out.append(Beat(app_name, ttl > 0, ttl // 1000 if ttl > 0 else None, entries))
    return out


def _collect() -> Fleet:
    errors: list[str] = []
    workers: list[WorkerInfo] = []
    queues: list[QueueInfo] = []
    try:
        workers = client.workers(INSPECT_TIMEOUT_S)
    except DependencyUnavailable as exc:
        errors.append(f"workers: {exc}")
    try:
        queues = client.queue_lengths()
    except DependencyUnavailable as exc:
        errors.append(f"queues: {exc}")
    r = get_redis()
    snapshots: dict[str, dict[str, Any]] = {}
    beat_list: list[Beat] = []
    try:
        snapshots, beat_list = resource_snapshots(r), beats(r)
    except redis.RedisError as exc:
        errors.append(f"Redis: {exc}")
    hosts: dict[str, Host] = {}
    for worker in workers:
        hosts.setdefault(_host_of(worker.name), Host(_host_of(worker.name))).workers.append(worker)
    for name, snapshot in snapshots.items():
        hosts.setdefault(name, Host(name)).resources = snapshot
    return Fleet(sorted(hosts.values(), key=lambda h: h.name), queues, beat_list, errors, datetime.now(UTC))


_cache_lock = threading.Lock()
_cache: tuple[float, Fleet] | None = None


def fleet_state() -> Fleet:
    """The fleet as of at most CACHE_S seconds ago (one inspect round serves every page refreshing meanwhile)."""
    global _cache
    with _cache_lock:
        if _cache is not None and time.monotonic() - _cache[0] < CACHE_S:
            return _cache[1]
        fleet = _collect()
        _cache = (time.monotonic(), fleet)
        return fleet


@router.get("/console/fleet", include_in_schema=False)
async def fleet_page(request: Request, session: Annotated[ConsoleSession, Depends(require_session)]) -> Response:
    fleet = await run_in_threadpool(fleet_state)
    return render(request, "fleet.html", session, page="fleet", fleet=fleet, refresh_s=REFRESH_S)
