"""Benchmark of render_video_task against the same FFmpeg command run by hand, in one run.

The job: three generated scenes that differ in size, rate and audio (1920x1080 at 30 fps with a tone,
1280x720 at 25 fps silent, 1080x1920 portrait at 30 fps with a tone), default 0.5 s fades, rendered to
1920x1080 at 30 fps, H.264 ``veryfast``, loudness-normalised AAC: 30 s of output by default.

- **worker**: ``render_video_task`` on a real worker (private redis-server, concurrency 1); wall time
  from send to result. It probes the scenes, measures loudness (audio-only pass), renders, verifies.
- **plain**: the exact final FFmpeg command the worker runs (same graph, same encoder options, the
  loudness already measured), started with ``subprocess`` — the least work that gives the same file.

Runs alternate (plain, worker, worker, plain, …) so load from other processes falls on both alike. Wall
time and CPU time (FFmpeg's, plus the pool process's own for the worker) are both reported: on a shared
machine the CPU ratio is the steadier one. Target: worker/plain ≤ 1.10. Absolute speeds vary ±25-60 %
between runs on shared machines.

    .venv/bin/python bench/render.py [--seconds 30] [--height 1080] [--runs 2] [--preset veryfast]

Prints a table and writes bench/results/render.json.
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

RESULTS = ROOT / "bench" / "results" / "render.json"
TASK_TIMEOUT_S = 3600


def scenes(folder: Path, seconds: float, height: int) -> list[Path]:
    """Three scenes whose lengths add up to ``seconds`` of output after two 0.5 s fades."""
    each = (seconds + 1.0) / 3
    width = height * 16 // 9 // 2 * 2
    return [
        media.make_video(folder / "scene-1.mp4", duration_s=each, size=(width, height), fps=30),
        media.make_video(folder / "scene-2.mp4", duration_s=each, size=(width * 2 // 3 // 2 * 2, height * 2 // 3),
                         fps=25, audio=False),
        media.make_video(folder / "scene-3.mp4", duration_s=each, size=(height, width), fps=30, tone_hz=660),
    ]


def job_for(paths: list[Path], height: int, preset: str) -> dict[str, Any]:
    width = height * 16 // 9 // 2 * 2
    return {"scenes": [{"video_path": str(p)} for p in paths],
            "output_format": {"width": width, "height": height, "fps": 30, "preset": preset}}


def plain_command(job: dict[str, Any], work: Path, target: Path) -> list[str]:
    """The worker's own final FFmpeg command for ``job``, built by the render module, loudness measured."""
    from geminivideo.contracts import RenderJob, parse_payload
    from geminivideo.video import render
    from geminivideo.video.workspace import Deadline

    payload = parse_payload(RenderJob, job)
    plan = render.plan_render(payload, work)
    loudness = render.measure_loudness(plan, Deadline(3600, "bench"), lambda _p, _m: None)
    encoding = render.choose_encoding(payload.output_format, use_gpu=False)
    args = render.encode_arguments(plan, render.render_graph(plan, loudness), encoding, target)
    return ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]


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


def timed_plain(command: list[str], target: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the plain FFmpeg command."""
    cpu, started = children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - started
    target.unlink(missing_ok=True)
    return elapsed, children_cpu_s() - cpu


def timed_task(worker: procs.ManagedProcess, job: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds from send to result, CPU seconds of the pool process and its FFmpeg/ffprobe children."""
    from geminivideo.video.tasks import render_video_task

    cpu, started = pool_cpu_s(worker), time.perf_counter()
    result: dict[str, Any] = render_video_task.delay(job).get(timeout=TASK_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    Path(result["output_path"]).unlink(missing_ok=True)
    return elapsed, pool_cpu_s(worker) - cpu, result


def measure(job: dict[str, Any], runs: int, env: dict[str, str], work: Path) -> dict[str, Any]:
    hostname = f"bench-render-{uuid.uuid4().hex[:6]}@localhost"
    worker = procs.start_worker("video", queues=[str(QueueName.RENDER)], hostname=hostname, env=env,
                                log_path=work / f"{hostname}.log", concurrency=1)
    target = Path(env["RENDER_DIR"]) / "plain.mp4"
    scratch = work / "plain-scratch"
    scratch.mkdir(exist_ok=True)
    sides: dict[str, list[float]] = {"plain_s": [], "plain_cpu_s": [], "worker_s": [], "worker_cpu_s": []}
    result: dict[str, Any] = {}
    try:
        command = plain_command(job, scratch, target)
        for run in range(runs):
            # Alternate which side goes first, so neither always follows the clip generation or the other.
            order = ("plain", "worker") if run % 2 == 0 else ("worker", "plain")
            for side in order:
                if side == "plain":
                    wall, cpu = timed_plain(command, target)
                else:
                    wall, cpu, result = timed_task(worker, job)
                sides[f"{side}_s"].append(wall)
                sides[f"{side}_cpu_s"].append(cpu)
    finally:
        worker.stop()
    return {**sides, "result": result}


def summarise(job: dict[str, Any], seconds: float, runs: dict[str, Any]) -> dict[str, Any]:
    plain, worker = statistics.median(runs["plain_s"]), statistics.median(runs["worker_s"])
    plain_cpu, worker_cpu = statistics.median(runs["plain_cpu_s"]), statistics.median(runs["worker_cpu_s"])
    result = runs["result"]
    return {
        "job": "3 mixed scenes, 2 fades, loudnorm", "output_s": round(result["duration"], 3),
        "requested_s": seconds, "size": f"{result['width']}x{result['height']}", "fps": result["fps"],
        "preset": job["output_format"]["preset"], "encoder": result["encoder"],
        "plain_s": round(plain, 3), "worker_s": round(worker, 3), "ratio": round(worker / plain, 3),
        "plain_cpu_s": round(plain_cpu, 3), "worker_cpu_s": round(worker_cpu, 3),
        "cpu_ratio": round(worker_cpu / plain_cpu, 3),
        "plain_speed_x": round(result["duration"] / plain, 3), "worker_speed_x": round(result["duration"] / worker, 3),
        **{f"runs_{key}": [round(t, 3) for t in runs[key]] for key in ("plain_s", "worker_s", "plain_cpu_s",
                                                                        "worker_cpu_s")},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def print_table(row: dict[str, Any]) -> None:
    header = (f"{'job':<8} {'output':>8} {'size':>10} {'plain':>8} {'worker':>8} {'ratio':>6} {'plain CPU':>10} "
              f"{'worker CPU':>10} {'CPU ratio':>9} {'speed':>7}")
    print(header)
    print("-" * len(header))
    print(f"{'render':<8} {row['output_s']:>7.2f}s {row['size']:>10} {row['plain_s']:>7.2f}s {row['worker_s']:>7.2f}s "
          f"{row['ratio']:>5.2f}x {row['plain_cpu_s']:>9.2f}s {row['worker_cpu_s']:>9.2f}s {row['cpu_ratio']:>8.2f}x "
          f"{row['plain_speed_x']:>6.2f}x")


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
    """Point this process (the Celery client, and the plain command's planning) at the bench's folders."""
    from geminivideo.config import get_settings
    from geminivideo.redis_client import reset_redis

    os.environ.update(env)
    get_settings.cache_clear()
    reset_redis()


def write_results(rows: list[dict[str, Any]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                               "platform": platform.platform()},
                                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "rows": rows}, indent=1) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="output length")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=2, help="runs per side")
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gv-bench-render-"))
    redis_proc, redis_url = procs.start_redis(data_dir=work / "redis")
    try:
        env = bench_env(work, redis_url)
        use_client_env(env)
        job = job_for(scenes(work / "media", args.seconds, args.height), args.height, args.preset)
        row = summarise(job, args.seconds, measure(job, args.runs, env, work))
        print_table(row)
        write_results([row])
    finally:
        redis_proc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
