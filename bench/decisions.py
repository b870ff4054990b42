"""Benchmark of the decisions domain: the fatigue scan through the task, against a per-ad Python loop, and
the sampler's allocation.

Starts everything privately (redis-server, a fresh PostgreSQL database, one ML worker with concurrency 1),
writes ``--ads`` generated ads x ``--days`` days, then in the same run:

1. ``monitor_all_ads_fatigue`` on the worker (reports and proposals written), timed end to end from the
   client, with the peak RSS of the pool process that ran it (sampled every 50 ms);
2. a straightforward reference: one query per ad and the same rules in plain Python (scipy per ad for the
   posterior), timed with its peak RSS, and compared verdict by verdict with the task's reports;
3. ``BattleHardenedSampler.allocate`` over 1,000 ads with 2,000 draws (median of 5).

    .venv/bin/python -m bench.decisions [--ads 100000] [--days 30] [--reference-ads N] [--quick]

``--reference-ads`` limits the per-ad loop to the first N ads and scales its time linearly (it is
reported as such). Targets (issue 7): scan <= 30 s and <= 1.5 GB for 100,000 ads x 30 days; allocation
<= 1 s. Prints a table and writes bench/results/decisions.json (``--output PATH`` elsewhere). ``--quick`` is a
smoke run (2,000 ads) that writes no results unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
from psycopg import sql
from scipy import special

from bench._common import (
    RESULTS_DIR,
    add_run_options,
    apply_quick,
    output_path,
    print_table,
    start_bench_worker,
    write_json,
)
from geminivideo import procs
from geminivideo.config import get_settings
from geminivideo.db.migrate import upgrade
from geminivideo.db.session import dispose_engine, get_engine
from geminivideo.ml.decisions.fatigue import FatigueThresholds
from geminivideo.redis_client import reset_redis

PG_ADMIN_DSN = os.environ.get("GV_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("GV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
RESULTS = RESULTS_DIR / "decisions.json"
TENANT = "bench"


# ─── Environment ────────────────────────────────────────────────────────────────────────────────────
@contextmanager
def private_stack(root: Path) -> Iterator[dict[str, str]]:
    """A private redis-server and PostgreSQL database; the process environment points at them."""
    redis_proc, redis_url = procs.start_redis(data_dir=root / "redis")
    db = f"gv_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    env = {"REDIS_URL": redis_url, "DATABASE_URL": PG_URL.format(db=db), "TEMP_DIR": str(root / "tmp"),
           "RENDER_DIR": str(root / "renders"), "PREVIEW_DIR": str(root / "previews")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    reset_redis()
    dispose_engine()
    try:
        upgrade(env["DATABASE_URL"])
        yield env
    finally:
        dispose_engine()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        redis_proc.stop()


class PeakRss:
    """Samples the RSS of a process tree every 50 ms; ``peak_child`` is the largest single child process."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self.peak_child = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kids = self._root.children(recursive=True)
                sizes = [p.memory_info().rss for p in kids]
                self.peak_child = max(self.peak_child, *sizes, 0)
                self.peak_tree = max(self.peak_tree, self._root.memory_info().rss + sum(sizes))
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ─── The reference: one ad at a time, plain Python ──────────────────────────────────────────────────
def _p_below(rc: float, ri: float, bc: float, bi: float, factor: float, points: int = 32) -> float:
    u = [(k + 0.5) / points for k in range(points)]
    ys = [special.betaincinv(1 + bc, 1 + bi - bc, x) for x in u]
    return sum(special.betainc(1 + rc, 1 + ri - rc, min(1.0, factor * y)) for y in ys) / points


def reference_verdict(
    rows: Sequence[tuple[Any, ...]], as_of: date, days: int, th: FatigueThresholds,
) -> tuple[str, str]:
    """The same rules as geminivideo.ml.decisions.fatigue, written plainly for one ad (no trend, no evidence)."""
    start = as_of - timedelta(days=days - 1)
    by_day: dict[int, tuple[Any, ...]] = {(r[0] - start).days: r for r in rows}
    imps = [float(by_day[d][1]) if d in by_day else 0.0 for d in range(days)]
    clicks = [float(by_day[d][2]) if d in by_day else 0.0 for d in range(days)]
    spend = [float(by_day[d][3]) if d in by_day else 0.0 for d in range(days)]
    freq = [by_day[d][5] if d in by_day and imps[d] > 0 else None for d in range(days)]
    budget = [by_day[d][6] if d in by_day else None for d in range(days)]
    if sum(1 for i in imps if i > 0) < th.min_days or sum(imps) < th.min_impressions:
        return "INSUFFICIENT_DATA", "ok"
    r = th.recent_days
    ri, rc, rs = sum(imps[-r:]), sum(clicks[-r:]), sum(spend[-r:])
    bi, bc, bs = sum(imps[:-r]), sum(clicks[:-r]), sum(spend[:-r])
    base_ok = sum(1 for i in imps[:-r] if i > 0) >= th.min_days and bi >= th.min_impressions and \
        ri >= th.min_window_impressions
    findings: list[tuple[int, str, str]] = []
    if base_ok and bc > 0:
        findings += _reference_ctr(imps, clicks, ri, rc, bi, bc, th)
    if base_ok and bs > 0:
        findings += _reference_cpm(imps, spend, ri, rs, bi, bs, th)
    reported = [f for f in freq if f is not None]
    if reported and reported[-1] > th.frequency_saturated:
        findings.append((3, "SATURATED", "critical"))
    elif reported and reported[-1] > th.frequency_warning:
        findings.append((7, "SATURATED", "warning"))
    if days >= 14 and _reference_stalled(imps, budget, th):
        findings.append((8, "FATIGUING", "warning"))
    return min(findings)[1:] if findings else ("HEALTHY", "ok")


def _reference_ctr(imps: list[float], clicks: list[float], ri: float, rc: float, bi: float, bc: float,
                   th: FatigueThresholds) -> list[tuple[int, str, str]]:
    r, base = th.recent_days, bc / bi
    if 1 - (rc / ri) / base < th.ctr_decline:
        return []
    p = _p_below(rc, ri, bc, bi, 1 - th.ctr_decline)
    worst = max(range(r), key=lambda k: imps[-r + k] * base - clicks[-r + k])
    ri2, rc2 = ri - imps[-r + worst], rc - clicks[-r + worst]
    powered = ri * base >= th.min_expected_clicks
    if p >= th.ctr_confidence and powered and ri2 > 0 and _p_below(rc2, ri2, bc, bi, 1 - th.ctr_decline) >= \
            th.ctr_confidence:
        return [(1, "FATIGUING", "critical")]
    return [(5, "FATIGUING", "warning")] if p >= th.ctr_warning_confidence else []


def _reference_cpm(imps: list[float], spend: list[float], ri: float, rs: float, bi: float, bs: float,
                   th: FatigueThresholds) -> list[tuple[int, str, str]]:
    r = th.recent_days
    base = 1000 * bs / bi
    rise = (1000 * rs / ri) / base - 1
    daily = [1000 * spend[-r + k] / imps[-r + k] if imps[-r + k] > 0 else 0.0 for k in range(r)]
    worst = max(range(r), key=lambda k: daily[k])
    ri2, rs2 = ri - imps[-r + worst], rs - spend[-r + worst]
    robust = (1000 * rs2 / ri2) / base - 1 if ri2 > 0 else math.nan
    if rise > th.cpm_critical and robust > th.cpm_critical:
        return [(2, "AUDIENCE_EXHAUSTED", "critical")]
    return [(6, "AUDIENCE_EXHAUSTED", "warning")] if rise > th.cpm_warning else []


def _reference_stalled(imps: list[float], budget: list[Any], th: FatigueThresholds) -> bool:
    week, prior = sum(imps[-7:]), sum(imps[-14:-7])
    b1 = [b for b in budget[-7:] if b is not None]
    b0 = [b for b in budget[-14:-7] if b is not None]
    if not b1 or not b0 or prior < th.min_impressions or sum(1 for i in imps[-14:-7] if i > 0) < th.min_days:
        return False
    if abs((sum(b1) / len(b1)) / (sum(b0) / len(b0)) - 1) > th.stall_budget_tolerance:
        return False
    return week / prior - 1 < th.stall_min_growth


def run_reference(ad_ids: list[str], as_of: date, days: int) -> tuple[dict[str, tuple[str, str]], float, int]:
    th = FatigueThresholds()
    start = as_of - timedelta(days=days - 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    verdicts = {}
    started = time.perf_counter()
    raw = get_engine().raw_connection()
    try:
        cursor = raw.cursor()
        for ad_id in ad_ids:  # the seed's shape: one query per ad
            cursor.execute("SELECT day, impressions, clicks, spend, reach, frequency, budget FROM ad_daily_metrics "
                           "WHERE ad_id = %s AND day BETWEEN %s AND %s ORDER BY day", (ad_id, start, as_of))
            verdicts[ad_id] = reference_verdict(cursor.fetchall(), as_of, days, th)
    finally:
        raw.close()
    elapsed = time.perf_counter() - started
    peak_kb = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return verdicts, elapsed, peak_kb * 1024


# ─── Steps ──────────────────────────────────────────────────────────────────────────────────────────
def generate(n_ads: int, days: int) -> tuple[float, int, date]:
    from geminivideo.ml.decisions.datagen import DatasetSpec, generate_ad_histories

    started = time.perf_counter()
    dataset = generate_ad_histories(DatasetSpec(n_ads=n_ads, days=days, seed=7, tenant_id=TENANT, replace=False))
    with get_engine().connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started, dataset.metric_rows, dataset.spec.last_day


def scan_through_task(env: dict[str, str], root: Path, queue: str) -> dict[str, Any]:
    from geminivideo.ml.tasks import monitor_all_ads_fatigue

    worker = start_bench_worker("ml", "decisions", queue, {**os.environ, **env}, root)
    try:
        with PeakRss(worker.pid) as rss:
            started = time.perf_counter()
            result = monitor_all_ads_fatigue.apply_async(kwargs={"tenant_id": TENANT}, queue=queue).get(timeout=1800)
            elapsed = time.perf_counter() - started
    finally:
        worker.stop()
    return {"seconds": elapsed, "peak_rss_child": rss.peak_child, "peak_rss_tree": rss.peak_tree, "result": result}


def task_verdicts(scan_id: int) -> dict[str, tuple[str, str]]:
    with get_engine().connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT ad_id, status, severity FROM fatigue_reports WHERE scan_id = {int(scan_id)}")
        return {ad: (status, severity) for ad, status, severity in rows}


def sampler_timing() -> dict[str, Any]:
    from geminivideo.ml.decisions.sampler import AdState, BattleHardenedSampler, SamplerConfig

    rng = np.random.default_rng(5)
    states = [AdState(ad_id=f"a{i}", impressions=int(n), clicks=int(n * rng.uniform(0.005, 0.03)), spend=n * 0.012,
                      pipeline_value=n * 0.012 * rng.lognormal(0, 0.7), age_hours=float(rng.uniform(0, 500)),
                      current_budget=float(rng.uniform(10, 100))) for i, n in enumerate(rng.integers(0, 200_000, 1000))]
    sampler = BattleHardenedSampler(SamplerConfig(seed=1, n_draws=2000))
    times = []
    for _ in range(5):
        started = time.perf_counter()
        result = sampler.allocate(states, 50_000)
        times.append(time.perf_counter() - started)
    return {"ads": 1000, "draws": 2000, "median_s": statistics.median(times), "min_s": min(times),
            "allocated": result["allocated"]}


# ─── Main ───────────────────────────────────────────────────────────────────────────────────────────
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ads", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reference-ads", type=int, default=None, help="run the per-ad loop on the first N ads only")
    add_run_options(parser, "2,000 ads")
    args = parser.parse_args()
    apply_quick(parser, args, ads=2000)
    root = Path(tempfile.mkdtemp(prefix="gv-bench-decisions-"))
    try:
        return _run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, root: Path) -> int:
    with private_stack(root) as env:
        gen_s, rows, as_of = generate(args.ads, args.days)
        print(f"generated {args.ads:,} ads x {args.days} days = {rows:,} rows in {gen_s:.1f} s", flush=True)
        task = scan_through_task(env, root, f"bench-{uuid.uuid4().hex[:6]}")
        print(f"task scan: {task['seconds']:.1f} s", flush=True)
        from geminivideo.ml.decisions.fatigue import iter_ad_chunks

        ad_ids = [ad[0] for chunk in iter_ad_chunks(TENANT, 10_000) for ad in chunk]
        subset = ad_ids[: args.reference_ads] if args.reference_ads else ad_ids
        ref, ref_s, ref_rss = run_reference(subset, as_of, 30)
        ours = task_verdicts(task["result"]["scan_id"])
    scale = len(ad_ids) / len(subset)
    agree = sum(ours.get(ad) == v for ad, v in ref.items()) / len(ref)
    sampler = sampler_timing()
    report = build_report(args, rows, gen_s, task, ref_s * scale, scale, ref_rss, agree, len(subset), sampler)
    show(report)
    print()
    write_json(output_path(args, RESULTS), report, indent=2)
    return 0


def build_report(args: argparse.Namespace, rows: int, gen_s: float, task: dict[str, Any], ref_s: float, scale: float,
                 ref_rss: int, agree: float, ref_ads: int, sampler: dict[str, Any]) -> dict[str, Any]:
    gib = 1024**3
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "dataset": {"ads": args.ads, "days": args.days, "rows": rows, "generate_s": round(gen_s, 2)},
        "fatigue_task": {"seconds": round(task["seconds"], 2), "peak_rss_gib": round(task["peak_rss_child"] / gib, 3),
                         "worker_tree_peak_rss_gib": round(task["peak_rss_tree"] / gib, 3),
                         "result": task["result"], "target_s": 30, "target_gib": 1.5},
        "reference_loop": {"seconds": round(ref_s, 2), "extrapolated_from_ads": ref_ads if scale > 1 else None,
                           "peak_rss_gib": round(ref_rss / gib, 3), "writes_reports": False},
        "speedup": round(ref_s / task["seconds"], 2),
        "verdict_agreement": round(agree, 5),
        "sampler_allocation": {**sampler, "target_s": 1.0},
    }


def show(r: dict[str, Any]) -> None:
    t, ref, s = r["fatigue_task"], r["reference_loop"], r["sampler_allocation"]
    note = f" (extrapolated from {ref['extrapolated_from_ads']:,} ads)" if ref["extrapolated_from_ads"] else ""
    print()
    print_table(f"{'measure':44} {'value':>14} {'target':>10}", [
        f"{'fatigue scan via task, s':44} {t['seconds']:>14.2f} {'<= 30':>10}",
        f"{'  peak RSS of the pool process, GiB':44} {t['peak_rss_gib']:>14.3f} {'<= 1.5':>10}",
        f"{'  ads / s':44} {r['dataset']['ads'] / t['seconds']:>14,.0f}",
        f"{'per-ad Python loop, s' + note:44} {ref['seconds']:>14.2f}",
        f"{'  peak RSS of the loop process, GiB':44} {ref['peak_rss_gib']:>14.3f}",
        f"{'speed-up of the task over the loop':44} {r['speedup']:>13.1f}x",
        f"{'verdicts equal (status and severity)':44} {r['verdict_agreement']:>14.2%}",
        f"{'sampler allocate 1,000 ads x 2,000 draws, s':44} {s['median_s']:>14.3f} {'<= 1':>10}",
    ])
    print(f"\nscan result: {json.dumps(t['result']['by_status'])}, critical {t['result']['critical']}, "
          f"proposals {t['result']['proposals_created']}; load average {r['machine']['load_avg']}")


if __name__ == "__main__":
    sys.exit(main())
