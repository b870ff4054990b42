"""Benchmark of transcode_task against the same FFmpeg command run by hand, for each codec, in one run.

Input: a generated 1920x1080, 30 fps H.264 + AAC clip, 30 s by default. For each target (H.264/MP4,
H.265/MP4, VP9/WebM, AV1/MP4 with SVT-AV1), preset ``veryfast`` and default quality:

- **worker**: ``transcode_task`` on a real worker (private redis-server, concurrency 1); wall time from
  send to result (probe, encode with progress, ffprobe verification, atomic rename, broker round trip);
- **plain**: the exact FFmpeg command the worker runs, built by the transcode module, via ``subprocess``.

Plain and worker runs alternate per codec (plain first, then worker first, …), so load from other
processes falls on both alike. Wall time and CPU time (FFmpeg's, plus the pool process's own for the
worker) are both reported: on a shared machine the CPU ratio is the steadier one.
Target: worker/plain ≤ 1.10. Absolute speeds vary ±25-60 % between runs on shared machines.

    .venv/bin/python bench/transcode.py [--seconds 30] [--height 1080] [--runs 1] [--codecs h264 h265 vp9 av1]

Prints a table and writes bench/results/transcode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the media helpers live in tests/support, shared with the video tests

from tests.support import media  # noqa: E402

from geminivideo import procs  # noqa: E402
from geminivideo.contracts import QueueName  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "transcode.json"
TASK_TIMEOUT_S = 3600
CONTAINERS = {"h264": "mp4", "h265": "mp4", "vp9": "webm", "av1": "mp4"}


def plain_command(source: Path, fmt: dict[str, Any], target: Path) -> tuple[list[str], str]:
    """The worker's own FFmpeg command for this transcode, and the encoder it uses."""
    from geminivideo.contracts import TranscodeFormat
    from geminivideo.video import transcode
    from geminivideo.video.ffmpeg import probe

    parsed = TranscodeFormat.model_validate(fmt)
    plan = transcode.plan_encoding(parsed)
    args = transcode.transcode_arguments(probe(source), parsed, plan, target.with_suffix(f".{plan.container}"))
    return ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args], plan.encoder


def pool_cpu_s(worker: procs.ManagedProcess) -> float:
    """CPU seconds used so far by the worker's pool process and the children it has reaped (FFmpeg,
    ffprobe): less sensitive than wall time to other load on a shared machine."""
    import psutil

    total = 0.0
    for child in psutil.Process(worker.pid).children():
        times = child.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_plain(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of the plain FFmpeg command."""
    cpu, started = children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - started
    Path(command[-1]).unlink(missing_ok=True)
    return elapsed, children_cpu_s() - cpu


def timed_task(worker: procs.ManagedProcess, source: Path, fmt: dict[str, Any]) -> tuple[float, float,
                                                                                          dict[str, Any]]:
    """Wall seconds from send to result, CPU seconds of the pool process and its FFmpeg/ffprobe children."""
    from geminivideo.video.tasks import transcode_task

    cpu, started = pool_cpu_s(worker), time.perf_counter()
    result: dict[str, Any] = transcode_task.delay(str(source), fmt).get(timeout=TASK_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    Path(result["output_path"]).unlink(missing_ok=True)
    return elapsed, pool_cpu_s(worker) - cpu, result


def measure_codec(worker: procs.ManagedProcess, source: Path, codec: str, runs: int,
                  render_dir: Path) -> dict[str, Any]:
    fmt = {"codec": codec, "container": CONTAINERS[codec]}
    command, encoder = plain_command(source, fmt, render_dir / f"plain-{codec}")
    sides: dict[str, list[float]] = {"plain_s": [], "plain_cpu_s": [], "worker_s": [], "worker_cpu_s": []}
    result: dict[str, Any] = {}
    for run in range(runs):
        # Alternate which side goes first, so neither always follows the other's heavy encode.
        for side in ("plain", "worker") if run % 2 == 0 else ("worker", "plain"):
            if side == "plain":
                wall, cpu = timed_plain(command)
            else:
                wall, cpu, result = timed_task(worker, source, fmt)
            sides[f"{side}_s"].append(wall)
            sides[f"{side}_cpu_s"].append(cpu)
    return summarise(codec, encoder, sides, result)


def measure(source: Path, codecs: list[str], runs: int, env: dict[str, str], work: Path) -> list[dict[str, Any]]:
    hostname = f"bench-transcode-{uuid.uuid4().hex[:6]}@localhost"
    worker = procs.start_worker("video", queues=[str(QueueName.TRANSCODE)], hostname=hostname, env=env,
                                log_path=work / f"{hostname}.log", concurrency=1)
    try:
        return [measure_codec(worker, source, codec, runs, Path(env["RENDER_DIR"])) for codec in codecs]
    finally:
        worker.stop()


def summarise(codec: str, encoder: str, sides: dict[str, list[float]], result: dict[str, Any]) -> dict[str, Any]:
    median = {key: statistics.median(values) for key, values in sides.items()}
    return {
        "codec": codec, "container": result["container"], "encoder": encoder, "output_s": round(result["duration"], 3),
        "size": f"{result['width']}x{result['height']}", "audio": result["audio_codec"],
        **{key: round(value, 3) for key, value in median.items()},
        "ratio": round(median["worker_s"] / median["plain_s"], 3),
        "cpu_ratio": round(median["worker_cpu_s"] / median["plain_cpu_s"], 3),
        "plain_speed_x": round(result["duration"] / median["plain_s"], 3),
        **{f"runs_{key}": [round(t, 3) for t in values] for key, values in sides.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'codec':<6} {'container':<9} {'encoder':<11} {'output':>8} {'plain':>8} {'worker':>8} {'ratio':>6} "
              f"{'plain CPU':>10} {'worker CPU':>10} {'CPU ratio':>9} {'speed':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['codec']:<6} {r['container']:<9} {r['encoder']:<11} {r['output_s']:>7.2f}s {r['plain_s']:>7.2f}s "
              f"{r['worker_s']:>7.2f}s {r['ratio']:>5.2f}x {r['plain_cpu_s']:>9.2f}s {r['worker_cpu_s']:>9.2f}s "
              f"{r['cpu_ratio']:>8.2f}x {r['plain_speed_x']:>6.2f}x")


def bench_env(work: Path, redis_url: str) -> dict[str, str]:
    dirs = {"TEMP_DIR": work / "tmp", "RENDER_DIR": work / "renders", "PREVIEW_DIR": work / "previews"}
    for path in [*dirs.values(), work / "media"]:
        path.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ, **{key: str(path) for key, path in dirs.items()},
        "MEDIA_ROOTS": ":".join(str(p) for p in [*dirs.values(), work / "media"]),
        "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{work / 'bench.db'}", "PYTHONUNBUFFERED": "1",
    }


def use_client_env(env: dict[str, str]) -> None:
    from geminivideo.config import get_settings
    from geminivideo.redis_client import reset_redis

    os.environ.update(env)
    get_settings.cache_clear()
    reset_redis()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=1, help="runs per side and codec")
    parser.add_argument("--codecs", nargs="+", default=list(CONTAINERS), choices=list(CONTAINERS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gv-bench-transcode-"))
    redis_proc, redis_url = procs.start_redis(data_dir=work / "redis")
    try:
        env = bench_env(work, redis_url)
        use_client_env(env)
        width = args.height * 16 // 9 // 2 * 2
        source = media.make_video(work / "media" / "source.mp4", duration_s=args.seconds, size=(width, args.height),
                                  fps=30)
        rows = measure(source, args.codecs, args.runs, env, work)
        print_table(rows)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                   "platform": platform.platform()},
                                       "input": {"seconds": args.seconds, "size": f"{width}x{args.height}", "fps": 30},
                                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "rows": rows}, indent=1) + "\n")
        print(f"written {RESULTS.relative_to(ROOT)}")
    finally:
        redis_proc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
