"""Benchmark of media through the object store (Swift + s3api on loopback), in one run.

1. **render**: the job of ``bench/render.py`` (three mixed scenes, two fades, loudnorm; 30 s of 1080p by
   default) on one real worker, once with local paths in and out and once with ``s3://`` scenes and an
   ``s3://`` output (download, render, verified upload, local copy removed). Runs alternate. Target:
   s3/local wall time ≤ 1.10.
2. **transfer**: a 1 GiB object up and down through the workers' code (``storage.transfer.upload``:
   multipart abort check, SHA-256 metadata, parallel parts, HEAD verify; ``storage.transfer.download``:
   HEAD and size limit, parallel ranged GETs, length check) against boto3's own ``upload_file`` /
   ``download_file`` with its default TransferConfig. Runs alternate. Target: ours ≥ 0.9 of boto3's throughput.

    .venv/bin/python -m bench.storage [--seconds 30] [--height 1080] [--runs 2] [--mib 1024] [--quick]

Prints two tables and writes bench/results/storage.json (``--output PATH`` elsewhere). ``--quick`` is a smoke
run (3 s at 360p, a 64 MiB object, 1 run each) that writes no results unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    start_bench_worker,
    timed_task,
    use_client_env,
    video_bench,
    write_results,
)
from bench.render import job_for, scenes  # the same job as bench/render.py
from geminivideo.contracts import QueueName
from tests.support.objectstore import StoreHandle, start_store

RESULTS = RESULTS_DIR / "storage.json"
TASK_TIMEOUT_S = 3600
MiB = 1024 * 1024


def store_for(work: Path, env: dict[str, str]) -> tuple[StoreHandle, str, dict[str, str]]:
    store = start_store(work / "objectstore")
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    store.client().create_bucket(Bucket=bucket)
    full = {**env, **store.env([bucket])}
    use_client_env(full)
    return store, bucket, full


# ─── 1. render ────────────────────────────────────────────────────────────────────────────────────
def render_runs(job: dict[str, Any], bucket: str, paths: list[Path], runs: int, env: dict[str, str],
                work: Path) -> dict[str, Any]:
    from geminivideo.storage.client import s3_client
    from geminivideo.video.tasks import render_video_task

    client = s3_client()
    for path in paths:
        client.upload_file(str(path), bucket, f"scenes/{path.name}")
    s3_job = {**job, "scenes": [{"video_path": f"s3://{bucket}/scenes/{p.name}"} for p in paths]}
    worker = start_bench_worker("video", "render", str(QueueName.RENDER), env, work)
    samples: dict[str, list[float]] = {"local_s": [], "s3_s": []}
    result: dict[str, Any] = {}
    try:
        for run in range(runs):
            for side in ("local", "s3") if run % 2 == 0 else ("s3", "local"):
                payload = job if side == "local" else {**s3_job, "output_url": f"s3://{bucket}/out/{run}/"}
                wall, _cpu, out = timed_task(worker, partial(render_video_task.delay, payload), TASK_TIMEOUT_S)
                samples[f"{side}_s"].append(wall)
                result = out if side == "s3" else result
    finally:
        worker.stop()
    local, s3 = statistics.median(samples["local_s"]), statistics.median(samples["s3_s"])
    return {"job": "3 mixed scenes, 2 fades, loudnorm", "output_s": round(result["duration"], 3),
            "size": f"{result['width']}x{result['height']}", "output_bytes": result["file_size"],
            "local_s": round(local, 3), "s3_s": round(s3, 3), "ratio": round(s3 / local, 3),
            "runs_local_s": [round(x, 3) for x in samples["local_s"]],
            "runs_s3_s": [round(x, 3) for x in samples["s3_s"]], "load_average_1m": load_average_1m()}


# ─── 2. transfer ──────────────────────────────────────────────────────────────────────────────────
def big_file(path: Path, mib: int) -> Path:
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
    return path


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def transfer_runs(bucket: str, source: Path, runs: int, work: Path) -> dict[str, Any]:
    from geminivideo.storage import transfer
    from geminivideo.storage.client import s3_client
    from geminivideo.storage.uri import ObjectUri

    client = s3_client()
    ours_uri, theirs_key = ObjectUri(bucket, "big/ours.bin"), "big/boto3.bin"
    down = work / "down.bin"
    sides: dict[str, Callable[[], Any]] = {
        "up_ours": lambda: transfer.upload(source, ours_uri, task_id="bench"),
        "up_boto3": lambda: client.upload_file(str(source), bucket, theirs_key),
        "down_ours": lambda: transfer.download(ours_uri, down, field="bench", max_bytes=source.stat().st_size),
        "down_boto3": lambda: client.download_file(bucket, theirs_key, str(down)),
    }
    samples: dict[str, list[float]] = {key: [] for key in sides}
    for run in range(runs):
        for direction in ("up", "down"):
            order = ("ours", "boto3") if run % 2 == 0 else ("boto3", "ours")
            for who in order:
                samples[f"{direction}_{who}"].append(timed(sides[f"{direction}_{who}"]))
                down.unlink(missing_ok=True)
    size = source.stat().st_size
    rows = []
    for direction in ("up", "down"):
        ours, theirs = statistics.median(samples[f"{direction}_ours"]), statistics.median(samples[f"{direction}_boto3"])
        rows.append({"direction": direction, "bytes": size, "ours_s": round(ours, 3), "boto3_s": round(theirs, 3),
                     "ours_mib_s": round(size / MiB / ours, 1), "boto3_mib_s": round(size / MiB / theirs, 1),
                     "throughput_ratio": round(theirs / ours, 3),
                     "runs_ours_s": [round(x, 3) for x in samples[f"{direction}_ours"]],
                     "runs_boto3_s": [round(x, 3) for x in samples[f"{direction}_boto3"]],
                     "load_average_1m": load_average_1m()})
    return {"rows": rows}


def show(render_row: dict[str, Any], transfer_rows: list[dict[str, Any]]) -> None:
    print_table(f"{'job':<8} {'output':>8} {'size':>10} {'local':>8} {'s3':>8} {'ratio':>6}",
                [f"{'render':<8} {render_row['output_s']:>7.2f}s {render_row['size']:>10} "
                 f"{render_row['local_s']:>7.2f}s {render_row['s3_s']:>7.2f}s {render_row['ratio']:>5.2f}x"])
    print()
    header = f"{'transfer':<9} {'MiB':>6} {'ours':>8} {'boto3':>8} {'ours MiB/s':>11} {'boto3 MiB/s':>12} {'ratio':>6}"
    print_table(header,
                [f"{r['direction']:<9} {r['bytes'] // MiB:>6} {r['ours_s']:>7.2f}s {r['boto3_s']:>7.2f}s "
                 f"{r['ours_mib_s']:>11.1f} {r['boto3_mib_s']:>12.1f} {r['throughput_ratio']:>5.2f}x"
                 for r in transfer_rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="render output length")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=2, help="runs per side")
    parser.add_argument("--mib", type=int, default=1024, help="size of the transfer object")
    parser.add_argument("--preset", default="veryfast")
    add_run_options(parser, "3 s at 360p, a 64 MiB object, 1 run per side")
    args = parser.parse_args()
    apply_quick(parser, args, seconds=3.0, height=360, runs=1, mib=64)
    with video_bench("gv-bench-storage-") as (work, env):
        store, bucket, env = store_for(work, env)
        try:
            paths = scenes(work / "media", args.seconds, args.height)
            render_row = render_runs(job_for(paths, args.height, args.preset), bucket, paths, args.runs, env, work)
            source = big_file(work / "big.bin", args.mib)
            transfer_rows = transfer_runs(bucket, source, args.runs, work)["rows"]
        finally:
            store.stop()
        show(render_row, transfer_rows)
        write_results(output_path(args, RESULTS), [render_row, *transfer_rows])


if __name__ == "__main__":
    main()
