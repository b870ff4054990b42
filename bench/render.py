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

    .venv/bin/python -m bench.render [--seconds 30] [--height 1080] [--runs 2] [--preset veryfast] [--quick]

Prints a table and writes bench/results/render.json (``--output PATH`` elsewhere). ``--quick`` is a smoke run
(3 s at 360p, 1 run per side) that writes no results unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    add_run_options,
    alternate_sides,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    run_lists,
    start_bench_worker,
    timed_command,
    timed_task,
    video_bench,
    write_results,
)
from geminivideo.contracts import QueueName
from tests.support import media

RESULTS = RESULTS_DIR / "render.json"
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
    from geminivideo.video.render import pipeline as render
    from geminivideo.video.workspace import Deadline

    payload = parse_payload(RenderJob, job)
    plan = render.plan_render(payload, work)
    loudness = render.measure_loudness(plan, Deadline(3600, "bench"), lambda _p, _m: None)
    encoding = render.choose_encoding(payload.output_format, use_gpu=False)
    args = render.encode_arguments(plan, render.render_graph(plan, loudness), encoding, target)
    return ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]


def measure(job: dict[str, Any], runs: int, env: dict[str, str], work: Path) -> dict[str, Any]:
    from geminivideo.video.tasks import render_video_task

    worker = start_bench_worker("video", "render", str(QueueName.RENDER), env, work)
    target = Path(env["RENDER_DIR"]) / "plain.mp4"
    scratch = work / "plain-scratch"
    scratch.mkdir(exist_ok=True)
    try:
        command = plain_command(job, scratch, target)
        # Alternate which side goes first, so neither always follows the clip generation or the other.
        sides, result = alternate_sides(runs, lambda: timed_command(command, target),
                                        lambda: timed_task(worker, lambda: render_video_task.delay(job),
                                                           TASK_TIMEOUT_S))
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
        **run_lists(runs, ("plain_s", "worker_s", "plain_cpu_s", "worker_cpu_s")),
        "load_average_1m": load_average_1m(),
    }


def show(row: dict[str, Any]) -> None:
    print_table(
        f"{'job':<8} {'output':>8} {'size':>10} {'plain':>8} {'worker':>8} {'ratio':>6} {'plain CPU':>10} "
        f"{'worker CPU':>10} {'CPU ratio':>9} {'speed':>7}",
        [f"{'render':<8} {row['output_s']:>7.2f}s {row['size']:>10} {row['plain_s']:>7.2f}s {row['worker_s']:>7.2f}s "
         f"{row['ratio']:>5.2f}x {row['plain_cpu_s']:>9.2f}s {row['worker_cpu_s']:>9.2f}s {row['cpu_ratio']:>8.2f}x "
         f"{row['plain_speed_x']:>6.2f}x"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="output length")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=2, help="runs per side")
    parser.add_argument("--preset", default="veryfast")
    add_run_options(parser, "3 s of output at 360p, 1 run per side")
    args = parser.parse_args()
    apply_quick(parser, args, seconds=3.0, height=360, runs=1)
    with video_bench("gv-bench-render-") as (work, env):
        job = job_for(scenes(work / "media", args.seconds, args.height), args.height, args.preset)
        row = summarise(job, args.seconds, measure(job, args.runs, env, work))
        show(row)
        write_results(output_path(args, RESULTS), [row])


if __name__ == "__main__":
    main()
