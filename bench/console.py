"""Operator console: how long the approvals page with 500 pending proposals takes to render on the server.

For SQLite and PostgreSQL: 500 ads in 5 tenants get 30 days of metrics (``api.console.sample_data``), the real
fatigue scan turns them into 500 proposals, a real uvicorn serves the API, a signed-in client requests
``/console/approvals?limit=500`` (the page with every card, its gate state and its figures; the charts' data
comes per card from ``/console/approvals/<id>/evidence`` as each card scrolls into view, measured too).
Target: the page in at most 300 ms (p95). Prints a table; writes bench/results/console.json with the load
average, since this machine is shared.

    .venv/bin/python -m bench.console            # full run, writes results
    .venv/bin/python -m bench.console --quick    # smoke run (50 proposals, a few requests), writes nothing
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench._common import RESULTS_DIR, add_run_options, apply_quick, output_path, print_table, write_results
from geminivideo import procs
from geminivideo.db.migrate import upgrade
from geminivideo.db.session import dispose_engine
from tests.support.env import applied

PG_ADMIN_DSN = os.environ.get("GV_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("GV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
RESULTS = RESULTS_DIR / "console.json"
TARGET_MS = 300.0
KEY = "bench-console-" + uuid.uuid4().hex
TENANTS = 5


@contextmanager
def database(backend: str, root: Path) -> Iterator[str]:
    """A fresh, migrated database of ``backend``; its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{root / 'console.db'}"
        upgrade(url)
        yield url
        return
    name = f"gv_bench_console_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = PG_URL.format(db=name)
        upgrade(url)
        yield url
    finally:
        dispose_engine()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def seed(proposals: int) -> int:
    """``proposals`` fatiguing ads over TENANTS tenants, judged by the real scan; the proposals it made."""
    from geminivideo.api.console.sample_data import seed_campaign
    from geminivideo.contracts import FatigueScanJob
    from geminivideo.db.session import session_scope
    from geminivideo.ml.decisions.fatigue import scan_all_ads

    per_tenant = proposals // TENANTS
    with session_scope() as session:
        for t in range(TENANTS):
            seed_campaign(session, f"tenant-{t}", f"campaign-{t}", per_tenant, as_of=date(2026, 11, 30),
                          saturated_every=4)
    return scan_all_ads(FatigueScanJob()).proposals_created


def sign_in(client: httpx.Client) -> None:
    form = client.get("/console/sign-in").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = client.post("/console/sign-in", data={"csrf": token, "api_key": KEY})
    assert response.status_code == 303, response.text


def timed_gets(client: httpx.Client, paths: list[str], warmup: int
               ) -> tuple[list[float], list[float], list[float], int]:
    """Milliseconds per GET seen by the client, and the server's wall and CPU milliseconds (``Server-Timing``,
    when sent), after ``warmup`` untimed GETs; and the size of the last body."""
    for path in paths[:warmup]:
        client.get(path).raise_for_status()
    times, server, cpu, size = [], [], [], 0
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
        timing = dict(re.findall(r"(\w+);dur=([0-9.]+)", response.headers.get("server-timing", "")))
        if timing:
            server.append(float(timing["app"]))
            cpu.append(float(timing["cpu"]))
    return times, server, cpu, size


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)


def summary(name: str, backend: str, times: list[float], size: int, **extra: Any) -> dict[str, Any]:
    return {"measure": name, "backend": backend, "requests": len(times), "p50_ms": round(statistics.median(times), 1),
            "p95_ms": _p95(times), "max_ms": round(max(times), 1), "bytes": size, **extra}


def run_backend(backend: str, root: Path, redis_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    with database(backend, root) as db_url, applied({"DATABASE_URL": db_url, "REDIS_URL": redis_url}):
        made = seed(args.proposals)
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "API_KEYS": KEY}
        api, base = procs.start_api(env, root / f"api-{backend}.log", ready_path="/health")
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                sign_in(client)
                page = f"/console/approvals?limit={args.proposals}"
                times, server, cpu, size = timed_gets(client, [page] * args.requests, warmup=3)
                body = client.get(page).text
                ids = re.findall(r'data-evidence-url="(/console/approvals/\d+/evidence)"', body)
                ev_times, _, _, ev_size = timed_gets(client, ids[: args.requests], warmup=3)
        finally:
            api.stop()
    cards = len(ids)
    assert cards == made == args.proposals, f"{backend}: {made} proposals made, {cards} cards shown"
    server_side = {"server_p50_ms": round(statistics.median(server), 1), "server_p95_ms": _p95(server),
                   "server_cpu_p50_ms": round(statistics.median(cpu), 1), "server_cpu_p95_ms": _p95(cpu)}
    return [summary("approvals page", backend, times, size, cards=cards, target_ms=TARGET_MS, **server_side),
            summary("evidence of one card", backend, ev_times, ev_size)]


def _pair(row: dict[str, Any], first: str, second: str) -> str:
    return f"{row[first]} / {row[second]}" if first in row else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proposals", type=int, default=500, help="pending proposals on the page (default 500)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per measure (default 30)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    add_run_options(parser, quick="50 proposals, 5 requests, SQLite only")
    args = parser.parse_args()
    apply_quick(parser, args, proposals=50, requests=5, backends="sqlite")
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gv-bench-console-") as tmp:
        root = Path(tmp)
        redis_proc, redis_url = procs.start_redis(data_dir=root / "redis")
        try:
            for backend in args.backends.split(","):
                rows += run_backend(backend.strip(), root / backend.strip(), redis_url, args)
        finally:
            redis_proc.stop()
    print_table(f"{'measure':<22} {'backend':<11} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>7} "
                f"{'server p50/p95 ms':>18} {'server CPU p50/p95':>19}",
                (f"{r['measure']:<22} {r['backend']:<11} {r['requests']:>4} {r['p50_ms']:>8} {r['p95_ms']:>8} "
                 f"{r['max_ms']:>8} {r['bytes'] / 1024:>7.0f} "
                 f"{_pair(r, 'server_p50_ms', 'server_p95_ms'):>18} "
                 f"{_pair(r, 'server_cpu_p50_ms', 'server_cpu_p95_ms'):>19}"
                 for r in rows))
    page_p95 = max(r["p95_ms"] for r in rows if r["measure"] == "approvals page")
    verdict = "within" if page_p95 <= TARGET_MS else "OVER"
    print(f"approvals page p95 {page_p95} ms: {verdict} the {TARGET_MS:.0f} ms target")
    write_results(output_path(args, RESULTS), rows, target_ms=TARGET_MS, proposals=args.proposals,
                  loadavg_before=[round(x, 2) for x in load_before],
                  loadavg_after=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
