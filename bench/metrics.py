"""Benchmark of the daily metrics import: an export of ``--ads`` ads x ``--days`` days into PostgreSQL.

Creates a private PostgreSQL database (migrated, dropped at the end), writes a CSV of generated histories
(the project's column names; every ad has every day, so 33,334 ads x 30 days = 1,000,020 rows), then runs the
command users run, ``geminivideo metrics import FILE --tenant bench``, as a child process:

1. the first import (every day new, every ad created), wall time and the child's peak RSS;
2. the same file again (every day unchanged: nothing written), wall time and peak RSS.

    .venv/bin/python -m bench.metrics [--ads 33334] [--days 30] [--quick]

Target (issue 18): the first import of 1,000,000 rows in <= 30 s with peak memory <= 1 GB. Prints a table and
writes bench/results/metrics.json (``--output PATH`` elsewhere); ``--quick`` (2,000 ads) writes nothing unless
``--output`` is given.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench._common import (
    RESULTS_DIR,
    ROOT,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    write_results,
)
from geminivideo.db.migrate import upgrade
from geminivideo.ml.decisions.datagen import DEFAULT_MIX, DatasetSpec, Profile, export_metrics_csv

PG_ADMIN_DSN = os.environ.get("GV_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("GV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")
RESULTS = RESULTS_DIR / "metrics.json"
TENANT = "bench"
TARGET_S, TARGET_MB = 30.0, 1024.0


@contextmanager
def private_database() -> Iterator[str]:
    db = f"gv_bench_metrics_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    url = PG_URL.format(db=db)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def timed_import(path: Path, database_url: str) -> dict[str, Any]:
    """Run the import command as a child; its wall time, peak RSS (the only child waited for) and output."""
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "geminivideo.cli", "metrics", "import", str(path), "--tenant", TENANT]
    load = load_average_1m()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-2000:]}")
    # ru_maxrss of children is the largest of any waited-for child: each run is measured in a fresh process
    # tree, see main(); in KiB on Linux.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = usage.ru_maxrss / 1024
    # The command's own CPU (parsing, COPY formatting): the rest of the wall time is PostgreSQL's work and waiting.
    return {"wall_s": round(wall_s, 2), "command_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(peak_mb, 1), "load_1m_before": load,
            "load_1m_after": load_average_1m(), "summary": done.stdout.strip()}


def count_rows(database_url: str) -> int:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ad_daily_metrics").fetchone()
    return int(row[0]) if row else 0


def run_child(args: argparse.Namespace, csv_path: Path, database_url: str, label: str) -> dict[str, Any]:
    """Measure one import in a child bench process, so each peak RSS figure belongs to that import alone."""
    command = [sys.executable, "-m", "bench.metrics", "--measure", str(csv_path), "--database-url", database_url]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    import json

    return {"run": label, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ads", type=int, default=33_334)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    add_run_options(parser, "2,000 ads")
    args = parser.parse_args()
    if args.measure:  # child mode: one timed import, printed as JSON
        import json

        print(json.dumps(timed_import(args.measure, args.database_url)))
        return
    apply_quick(parser, args, ads=2_000)
    # every ad has every day: no NEW profile
    mix: dict[Profile, float] = {p: share for p, share in DEFAULT_MIX.items() if p is not Profile.NEW}
    with tempfile.TemporaryDirectory(prefix="gv-bench-metrics-") as tmp, private_database() as database_url:
        csv_path = Path(tmp) / "export.csv"
        start = time.perf_counter()
        dataset = export_metrics_csv(DatasetSpec(n_ads=args.ads, days=args.days, seed=18, tenant_id=TENANT, mix=mix),
                                     csv_path)
        export_s = time.perf_counter() - start
        runs = [run_child(args, csv_path, database_url, "first import"),
                run_child(args, csv_path, database_url, "re-import (unchanged)")]
        stored = count_rows(database_url)
        size_mb = csv_path.stat().st_size / 1e6
    if stored != dataset.metric_rows:
        raise SystemExit(f"stored {stored} rows, expected {dataset.metric_rows}")
    rows = [{**r, "rows": dataset.metric_rows, "rows_per_s": round(dataset.metric_rows / r["wall_s"])} for r in runs]
    print_table(f"{'run':<24} {'rows':>10} {'wall s':>8} {'cmd CPU s':>9} {'rows/s':>9} {'peak MB':>8} {'load':>5}",
                [f"{r['run']:<24} {r['rows']:>10,} {r['wall_s']:>8.2f} {r['command_cpu_s']:>9.2f} "
                 f"{r['rows_per_s']:>9,} {r['peak_rss_mb']:>8.0f} {r['load_1m_before']:>5.2f}" for r in rows])
    first = rows[0]
    verdict = first["wall_s"] <= TARGET_S and first["peak_rss_mb"] <= TARGET_MB
    print(f"target <= {TARGET_S:.0f} s and <= {TARGET_MB:.0f} MB for the first import: "
          f"{'met' if verdict else 'NOT met'}")
    write_results(output_path(args, RESULTS), rows, config={"ads": args.ads, "days": args.days, "csv_mb":
                  round(size_mb, 1), "export_s": round(export_s, 2), "database": "postgresql",
                  "target": {"wall_s": TARGET_S, "peak_rss_mb": TARGET_MB}, "target_met": verdict})


if __name__ == "__main__":
    main()
