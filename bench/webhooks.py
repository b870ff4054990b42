"""Benchmark of the HubSpot webhook path on loopback: ingestion speed against a bare endpoint, then processing.

Starts everything privately (redis-server, a fresh PostgreSQL database, the real API under uvicorn with
as many worker processes as docker-compose.yml runs, a bare FastAPI app that only answers 200 under the
same uvicorn settings, and one ML worker with concurrency 4), sends signed single-event and 100-event
requests, then lets the worker drain what was enqueued. Each target and shape gets a few unmeasured
warm-up requests first (connection pools, psycopg's prepared statements, the Celery app's first import),
so p99 describes steady traffic rather than the first request of a fresh process. Bounded in count and
time; prints a table and writes bench/results/webhooks.json.

    .venv/bin/python -m bench.webhooks [--single 400] [--batches 150] [--concurrency 8] [--api-workers 2]

Targets (issue 6): ≥ 2,000 accepted events/s with 100-event batches, p99 < 250 ms, ≥ 200 processed
events/s. Absolute numbers vary a lot on shared 2-core machines; the ratio to the bare endpoint, in
the same run, is the stable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text

from geminivideo import procs
from geminivideo.contracts import QueueName
from geminivideo.db.migrate import upgrade
from geminivideo.ml.webhooks.signature import v3_signature

SECRET = "bench-" + secrets.token_hex(8)
PATH = "/api/webhooks/hubspot"
STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
          "contractsent", "closedwon", "closedlost"]
PG_ADMIN_DSN = os.environ.get("GV_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("GV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
RESULTS = Path(__file__).with_name("results") / "webhooks.json"
BARE_APP = '''
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/api/webhooks/hubspot")
async def hubspot(request: Request) -> dict:
    await request.body()
    return {"ok": True}
'''


@dataclass
class LoadResult:
    target: str
    shape: str
    requests: int
    events: int
    errors: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_event: float  # CPU the server process spent per accepted event: robust to a busy machine


def hubspot_batch(size: int, portal: int) -> bytes:
    now = int(time.time() * 1000)
    events = [{"eventId": i, "subscriptionId": 1, "portalId": portal, "appId": 1, "occurredAt": now,
               "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
               "objectId": uuid.uuid4().int % 10**12, "propertyName": "dealstage",
               "propertyValue": STAGES[i % len(STAGES)], "changeSource": "CRM"} for i in range(size)]
    return json.dumps(events).encode()


def signed_headers(url: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": v3_signature(SECRET, "POST", url, body, stamp)}


async def _load(base: str, make_body: Callable[[], bytes], size: int, count: int, concurrency: int,
                max_s: float) -> tuple[list[float], int, int, float]:
    url = base + PATH
    latencies: list[float] = []
    events = errors = 0
    deadline = time.monotonic() + max_s
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def run(client: httpx.AsyncClient) -> None:
        nonlocal events, errors
        while time.monotonic() < deadline:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = make_body()
            started = time.perf_counter()
            response = await client.post(PATH, content=body, headers=signed_headers(url, body))
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                events += size
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(run(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return latencies, events, errors, seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its children."""
    parent = psutil.Process(pid)
    total = 0.0
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def load(target: str, base: str, server_pid: int, shape: str, size: int, count: int, concurrency: int,
         max_s: float, portal: int) -> LoadResult:
    cpu_before = cpu_seconds(server_pid)
    latencies, events, errors, seconds = asyncio.run(
        _load(base, lambda: hubspot_batch(size, portal), size, count, concurrency, max_s))
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return LoadResult(target, shape, len(latencies), events, errors, round(seconds, 2),
                      round(events / seconds, 1) if seconds else 0.0, round(statistics.median(ordered), 1),
                      round(p99, 1), round(cpu_ms / events, 3) if events else 0.0)


def start_api(name: str, app: str, env: dict[str, str], logs: Path, workers: int,
              app_dir: Path | None = None) -> tuple[Any, str]:
    args = ["--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    if app_dir is not None:
        args += ["--app-dir", str(app_dir)]
    return procs.start_api(env, logs / f"{name}.log", app=app, name=name, uvicorn_args=args)


def create_database() -> tuple[str, str]:
    name = f"gv_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_URL.format(db=name)
    upgrade(url)
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drain(database_url: str, env: dict[str, str], logs: Path, max_s: float) -> dict[str, Any]:
    """Start one ML worker (concurrency 4) on the backlog and time it until every deal event is final."""
    engine = create_engine(database_url)
    count = text("SELECT count(*) FROM webhook_events WHERE deal_payload IS NOT NULL")
    done = text("SELECT count(*) FROM webhook_events WHERE status IN ('processed', 'stale', 'failed')")
    failed = text("SELECT count(*) FROM webhook_events WHERE status = 'failed'")
    with engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
    worker = procs.start_worker("ml", queues=[str(QueueName.HUBSPOT_WEBHOOK_EVENTS)], hostname="bench-ml@localhost",
                                env=env, log_path=logs / "worker.log", concurrency=4)
    started = time.perf_counter()
    cpu_before = cpu_seconds(worker.pid)
    # The worker starts on the backlog before it answers the readiness ping: only what it finishes from
    # here on counts towards the rate.
    with engine.connect() as conn:
        finished = finished_before = int(conn.execute(done).scalar_one())
    try:
        while time.perf_counter() - started < max_s:
            with engine.connect() as conn:
                finished = int(conn.execute(done).scalar_one())
            if finished >= total:
                break
            time.sleep(0.25)
        seconds = time.perf_counter() - started
        cpu_ms = (cpu_seconds(worker.pid) - cpu_before) * 1000
        with engine.connect() as conn:
            failures = int(conn.execute(failed).scalar_one())
    finally:
        worker.stop()
        engine.dispose()
    timed = finished - finished_before
    return {"events": total, "processed": finished, "processed_before_timing": finished_before, "failed": failures,
            "seconds": round(seconds, 2), "events_per_s": round(timed / seconds, 1) if seconds else 0.0,
            "complete": finished >= total, "worker_cpu_ms_per_event": round(cpu_ms / timed, 3) if timed else 0.0}


def print_table(loads: list[LoadResult], processing: dict[str, Any]) -> None:
    header = f"{'target':<6} {'shape':<10} {'requests':>8} {'events':>7} {'err':>4} {'s':>6} {'events/s':>9} " \
             f"{'p50 ms':>7} {'p99 ms':>7} {'vs bare':>8} {'CPU ms/ev':>9}"
    print(header)
    print("-" * len(header))
    bare = {r.shape: r for r in loads if r.target == "bare"}
    for r in loads:
        ratio = r.events_per_s / bare[r.shape].events_per_s if r.shape in bare and bare[r.shape].events_per_s else 0
        print(f"{r.target:<6} {r.shape:<10} {r.requests:>8} {r.events:>7} {r.errors:>4} {r.seconds:>6.1f} "
              f"{r.events_per_s:>9.1f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {ratio:>8.2f} "
              f"{r.server_cpu_ms_per_event:>9.3f}")
    timed = processing["processed"] - processing["processed_before_timing"]
    print(f"\nprocessing (1 ML worker, concurrency 4): {timed} events in {processing['seconds']} s = "
          f"{processing['events_per_s']} events/s ({processing['processed']}/{processing['events']} final, "
          f"{processing['processed_before_timing']} before the worker answered its ping), "
          f"{processing['failed']} failed, "
          f"{processing['worker_cpu_ms_per_event']} CPU ms/event in the worker")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=400, help="single-event requests per target")
    parser.add_argument("--batches", type=int, default=150, help="100-event requests per target")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn processes (docker-compose.yml runs 2)")
    parser.add_argument("--warmup", type=int, default=16, help="unmeasured requests per target and shape first")
    parser.add_argument("--max-seconds", type=float, default=60, help="cap per load phase")
    parser.add_argument("--quick", action="store_true",
                        help="a small smoke run (50 singles, 5 batches); writes no results unless --output is given")
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/webhooks.json)")
    args = parser.parse_args()
    if args.quick:
        args.single, args.batches, args.warmup = 50, 5, 4

    root = Path(tempfile.mkdtemp(prefix="gv-bench-webhooks-"))
    redis, redis_url = procs.start_redis(data_dir=root / "redis")
    db_name, database_url = create_database()
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url, "HUBSPOT_CLIENT_SECRET": SECRET,
           "TEMP_DIR": str(root / "tmp"), "RENDER_DIR": str(root / "renders"), "PREVIEW_DIR": str(root / "previews"),
           "PYTHONUNBUFFERED": "1", "API_AUTH": "off"}  # loopback only; the webhook route needs no key anyway
    (root / "bare").mkdir()
    (root / "bare" / "bare_app.py").write_text(BARE_APP)
    running: list[Any] = [redis]
    portal = 4242
    try:
        api, api_base = start_api("api", "geminivideo.api:app", env, root, args.api_workers)
        bare, bare_base = start_api("bare", "bare_app:app", env, root, args.api_workers, app_dir=root / "bare")
        running += [api, bare]
        loads = []
        load_before = os.getloadavg()[0]
        for target, base, pid in (("bare", bare_base, bare.pid), ("api", api_base, api.pid)):
            for shape, size, count in (("1-event", 1, args.single), ("100-event", 100, args.batches)):
                load(target, base, pid, shape, size, args.warmup, args.concurrency, args.max_seconds, portal)
                loads.append(load(target, base, pid, shape, size, count, args.concurrency, args.max_seconds, portal))
        api.stop()
        bare.stop()
        processing = drain(database_url, env, root, max_s=max(60.0, args.max_seconds * 2))
    finally:
        for proc in running:
            proc.stop()
        drop_database(db_name)
        shutil.rmtree(root, ignore_errors=True)

    print_table(loads, processing)
    batch = next(r for r in loads if r.target == "api" and r.shape == "100-event")
    targets = {"accepted_events_per_s_100_batches": {"target": 2000, "measured": batch.events_per_s,
                                                     "met": batch.events_per_s >= 2000},
               "p99_ms": {"target": 250, "measured": max(r.p99_ms for r in loads if r.target == "api"),
                          "met": all(r.p99_ms < 250 for r in loads if r.target == "api")},
               "processed_events_per_s": {"target": 200, "measured": processing["events_per_s"],
                                          "met": processing["events_per_s"] >= 200}}
    results = args.output or (None if args.quick else RESULTS)  # a smoke run never overwrites bench/results
    if results is None:
        print("quick run: results not written (pass --output PATH to keep them)")
        return 0
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "benchmark": "webhooks", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()[0]},
        "settings": {k: v for k, v in vars(args).items() if k != "output"}, "loads": [asdict(r) for r in loads],
        "processing": processing, "targets": targets,
    }, indent=2) + "\n")
    print(f"\nmachine load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)")
    print("targets: " + ", ".join(f"{k} {v['measured']} ({'met' if v['met'] else 'NOT met'})"
                                     for k, v in targets.items()))
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
