"""Benchmark of media through the object store (Swift + s3api on loopback), in one run.

1. **render**: the job of ``bench/render.py`` (three mixed scenes, two fades, loudnorm; 30 s of 1080p by
   default) on one real worker, once with local paths in and out and once with ``s3://`` scenes and an
   ``s3://`` output (download, render, verified upload, local copy removed). Runs alternate. Target:
   s3/local wall time ≤ 1.10.
2. **transfer**: a 1 GiB object up and down through the workers' code (``storage.transfer.upload``:
   multipart abort check, SHA-256 metadata, parallel parts, HEAD verify; ``storage.transfer.download``:
   HEAD and size limit, parallel ranged GETs, length check) against boto3's own ``upload_file`` /
   ``download_file`` with its default TransferConfig, and against obstore's own calls (``obstore.put`` of the
   file with its default parts, ``obstore.get`` streamed to a file), the other library the issue allowed:
   the comparison that chose boto3 (README, storage section). Each round runs every candidate once per
   direction; the order reverses every round. Target: ours ≥ 0.9 of boto3's throughput.

    .venv/bin/python -m bench.storage [--seconds 30] [--height 1080] [--runs 2] [--transfer-runs N] [--mib 1024]
                                      [--quick]

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


def obstore_store(bucket: str) -> Any:
    """obstore's S3 client for ``bucket`` with the settings the workers use (path-style, the test endpoint)."""
    from obstore.store import S3Store

    from geminivideo.config import get_settings

    settings = get_settings()
    endpoint = settings.s3_endpoint_url or None
    key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    return S3Store(bucket, endpoint=endpoint, region=settings.aws_region, virtual_hosted_style_request=False,
                   access_key_id=key_id.get_secret_value() if key_id else None,
                   secret_access_key=secret.get_secret_value() if secret else None,
                   client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))})


def obstore_download(store: Any, key: str, dest: Path) -> None:
    import obstore

    with dest.open("wb") as out:
        for chunk in obstore.get(store, key).stream():
            out.write(chunk)


CANDIDATES = ("ours", "boto3", "obstore")


def transfer_runs(bucket: str, source: Path, runs: int, work: Path) -> dict[str, Any]:
    import obstore

    from geminivideo.storage import transfer
    from geminivideo.storage.client import s3_client
    from geminivideo.storage.uri import ObjectUri

    client, store = s3_client(), obstore_store(bucket)
    ours_uri, boto3_key, obstore_key = ObjectUri(bucket, "big/ours.bin"), "big/boto3.bin", "big/obstore.bin"
    down = work / "down.bin"
    sides: dict[str, Callable[[], Any]] = {
        "up_ours": lambda: transfer.upload(source, ours_uri, task_id="bench"),
        "up_boto3": lambda: client.upload_file(str(source), bucket, boto3_key),
        "up_obstore": lambda: obstore.put(store, obstore_key, source),
        "down_ours": lambda: transfer.download(ours_uri, down, field="bench", max_bytes=source.stat().st_size),
        "down_boto3": lambda: client.download_file(bucket, boto3_key, str(down)),
        "down_obstore": lambda: obstore_download(store, obstore_key, down),
    }
    samples: dict[str, list[float]] = {key: [] for key in sides}
    size = source.stat().st_size
    for run in range(runs):
        for direction in ("up", "down"):
            for who in CANDIDATES if run % 2 == 0 else tuple(reversed(CANDIDATES)):
                samples[f"{direction}_{who}"].append(timed(sides[f"{direction}_{who}"]))
                if direction == "down" and down.stat().st_size != size:
                    raise RuntimeError(f"{who} downloaded {down.stat().st_size} bytes of {size}")
                down.unlink(missing_ok=True)
    return {"rows": [_transfer_row(direction, size, samples) for direction in ("up", "down")]}


def _transfer_row(direction: str, size: int, samples: dict[str, list[float]]) -> dict[str, Any]:
    medians = {who: statistics.median(samples[f"{direction}_{who}"]) for who in CANDIDATES}
    row: dict[str, Any] = {"direction": direction, "bytes": size}
    for who in CANDIDATES:
        row[f"{who}_s"] = round(medians[who], 3)
        row[f"{who}_mib_s"] = round(size / MiB / medians[who], 1)
    row["throughput_ratio"] = round(medians["boto3"] / medians["ours"], 3)  # ours vs boto3's own call
    row["obstore_boto3_time_ratio"] = round(medians["obstore"] / medians["boto3"], 3)  # < 1: obstore faster
    for who in CANDIDATES:
        row[f"runs_{who}_s"] = [round(x, 3) for x in samples[f"{direction}_{who}"]]
    row["load_average_1m"] = load_average_1m()
    return row


def show(render_row: dict[str, Any], transfer_rows: list[dict[str, Any]]) -> None:
    print_table(f"{'job':<8} {'output':>8} {'size':>10} {'local':>8} {'s3':>8} {'ratio':>6}",
                [f"{'render':<8} {render_row['output_s']:>7.2f}s {render_row['size']:>10} "
                 f"{render_row['local_s']:>7.2f}s {render_row['s3_s']:>7.2f}s {render_row['ratio']:>5.2f}x"])
    print()
    header = (f"{'transfer':<9} {'MiB':>6} {'ours':>8} {'boto3':>8} {'obstore':>8} {'ours/boto3':>11} "
              f"{'obstore/boto3 time':>19}")
    print_table(header,
                [f"{r['direction']:<9} {r['bytes'] // MiB:>6} {r['ours_s']:>7.2f}s {r['boto3_s']:>7.2f}s "
                 f"{r['obstore_s']:>7.2f}s {r['throughput_ratio']:>10.2f}x {r['obstore_boto3_time_ratio']:>18.2f}x"
                 for r in transfer_rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="render output length")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=2, help="render runs per side")
    parser.add_argument("--transfer-runs", type=int, default=None, help="transfer rounds (default: --runs)")
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
            transfer_rows = transfer_runs(bucket, source, args.transfer_runs or args.runs, work)["rows"]
        finally:
            store.stop()
        show(render_row, transfer_rows)
        write_results(output_path(args, RESULTS), [render_row, *transfer_rows])


if __name__ == "__main__":
    main()
