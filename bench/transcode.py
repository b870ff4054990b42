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

    .venv/bin/python -m bench.transcode [--seconds 30] [--height 1080] [--runs 1] [--codecs h264 h265 vp9 av1] [--quick]

Prints a table and writes bench/results/transcode.json (``--output PATH`` elsewhere). ``--quick`` is a smoke
run (a 2 s 360p input, every codec, 1 run per side) that writes no results unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    add_run_options,
    alternate_sides,
    apply_quick,
    load_average_1m,
    medians,
    output_path,
    print_table,
    run_lists,
    start_bench_worker,
    timed_command,
    timed_task,
    video_bench,
    write_results,
)
from geminivideo import procs
from geminivideo.contracts import QueueName
from tests.support import media

RESULTS = RESULTS_DIR / "transcode.json"
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


def measure_codec(worker: procs.ManagedProcess, source: Path, codec: str, runs: int,
                  render_dir: Path) -> dict[str, Any]:
    from geminivideo.video.tasks import transcode_task

    fmt = {"codec": codec, "container": CONTAINERS[codec]}
    command, encoder = plain_command(source, fmt, render_dir / f"plain-{codec}")
    # Alternate which side goes first, so neither always follows the other's heavy encode.
    sides, result = alternate_sides(runs, lambda: timed_command(command, Path(command[-1])),
                                    lambda: timed_task(worker, lambda: transcode_task.delay(str(source), fmt),
                                                       TASK_TIMEOUT_S))
    return summarise(codec, encoder, sides, result)


def measure(source: Path, codecs: list[str], runs: int, env: dict[str, str], work: Path) -> list[dict[str, Any]]:
    worker = start_bench_worker("video", "transcode", str(QueueName.TRANSCODE), env, work)
    try:
        return [measure_codec(worker, source, codec, runs, Path(env["RENDER_DIR"])) for codec in codecs]
    finally:
        worker.stop()


def summarise(codec: str, encoder: str, sides: dict[str, list[float]], result: dict[str, Any]) -> dict[str, Any]:
    median = medians(sides)
    return {
        "codec": codec, "container": result["container"], "encoder": encoder, "output_s": round(result["duration"], 3),
        "size": f"{result['width']}x{result['height']}", "audio": result["audio_codec"],
        **{key: round(value, 3) for key, value in median.items()},
        "ratio": round(median["worker_s"] / median["plain_s"], 3),
        "cpu_ratio": round(median["worker_cpu_s"] / median["plain_cpu_s"], 3),
        "plain_speed_x": round(result["duration"] / median["plain_s"], 3),
        **run_lists(sides),
        "load_average_1m": load_average_1m(),
    }


def show(rows: list[dict[str, Any]]) -> None:
    print_table(
        f"{'codec':<6} {'container':<9} {'encoder':<11} {'output':>8} {'plain':>8} {'worker':>8} {'ratio':>6} "
        f"{'plain CPU':>10} {'worker CPU':>10} {'CPU ratio':>9} {'speed':>7}",
        [f"{r['codec']:<6} {r['container']:<9} {r['encoder']:<11} {r['output_s']:>7.2f}s {r['plain_s']:>7.2f}s "
         f"{r['worker_s']:>7.2f}s {r['ratio']:>5.2f}x {r['plain_cpu_s']:>9.2f}s {r['worker_cpu_s']:>9.2f}s "
         f"{r['cpu_ratio']:>8.2f}x {r['plain_speed_x']:>6.2f}x" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--runs", type=int, default=1, help="runs per side and codec")
    parser.add_argument("--codecs", nargs="+", default=list(CONTAINERS), choices=list(CONTAINERS))
    add_run_options(parser, "a 2 s input at 360p")
    args = parser.parse_args()
    apply_quick(parser, args, seconds=2.0, height=360)
    with video_bench("gv-bench-transcode-") as (work, env):
        width = args.height * 16 // 9 // 2 * 2
        source = media.make_video(work / "media" / "source.mp4", duration_s=args.seconds, size=(width, args.height),
                                  fps=30)
        rows = measure(source, args.codecs, args.runs, env, work)
        show(rows)
        write_results(output_path(args, RESULTS), rows,
                      input={"seconds": args.seconds, "size": f"{width}x{args.height}", "fps": 30})


if __name__ == "__main__":
    main()
