"""Benchmark: split-and-stitch transcode on 1, 2 and 4 segment workers against one plain FFmpeg encode.

The input is a generated 1080p30 clip (``testsrc2`` with an AAC tone, a keyframe every 2 s) of
``--duration`` seconds (10 minutes by default). For each codec (VP9/WebM and SVT-AV1/MP4 by default):

- **plain**: the exact FFmpeg command a single ``transcode_task`` runs (same filter, encoder, options);
- **split**: ``transcode_task`` sent to N real video workers (concurrency 1 each, ``SPLIT_MIN_S`` below the
  input's length, parts of ``--segment-s``), timed from send to result; CPU is the sum over the workers' pool
  processes and their FFmpeg children.

Every split output is checked independently of the worker's own verification: its video packet count equals
the input's (ffprobe) and mediainfo's frame count, the video duration is within one frame of the input's, and
each seam's first frame sits where the input has it (half a frame of rounding). The ratio is split wall time
over plain wall time (targets: ≤ 1.10 with 1 worker on this 2-core machine; ≥ 2.5x faster with 4 workers on a
16-core host). The load average is recorded with each row: the machine is shared.

With ``--runs N`` each codec gets N rounds of the plain encode and of each split, the plain encode first in
even rounds and last in odd ones, and each row gives the medians (``bench.split_overhead`` runs the one-worker
overhead that way: 5 rounds of a 300 s input). One round of the 10-minute input is over half an hour of
encoding on 2 cores.

    .venv/bin/python -m bench.split_transcode [--duration 600] [--codecs vp9 av1] [--workers 1 2 4] [--runs 1]
                                              [--quick]

Prints a table and writes bench/results/split_transcode.json (``--output PATH`` elsewhere). ``--quick`` (20 s
at 640x360, VP9, the first two worker counts, 5 s parts) writes nothing unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from bench._common import (
    RESULTS_DIR,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    pool_cpu_s,
    print_table,
    run_lists,
    timed_command,
    video_bench,
    write_results,
)
from geminivideo import procs
from geminivideo.contracts import QueueName, TranscodeFormat, TranscodeJob
from geminivideo.video.split_transcode import packet_times

RESULTS = RESULTS_DIR / "split_transcode.json"
FORMATS = {"vp9": {"codec": "vp9", "container": "webm"}, "av1": {"codec": "av1", "container": "mp4"},
           "h264": {"codec": "h264", "container": "mp4"}}
TASK_TIMEOUT_S = 3 * 3600


def make_input(path: Path, seconds: float, size: str, fps: int) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={seconds}",
                    "-f", "lavfi", "-i", f"sine=f=330:d={seconds}:sample_rate=48000", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", str(2 * fps), "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-movflags",
                    "+faststart", str(path)], check=True)
    return path


def plain_command(source: Path, fmt: dict[str, Any], target: Path) -> list[str]:
    """The single encode's own FFmpeg arguments (built by the worker's code, not re-typed here)."""
    from geminivideo.video.ffmpeg import probe
    from geminivideo.video.transcode import plan_encoding, transcode_arguments

    job = TranscodeJob(input_path=str(source), output_format=TranscodeFormat(**fmt))
    plan = plan_encoding(job.output_format)
    return ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            *transcode_arguments(probe(source), job.output_format, plan, target)]


def check_output(output: Path, source_times: list[float], frame_s: float, parts: list[tuple[float, int]]) -> list[str]:
    """Frame count (ffprobe and mediainfo), duration within a frame, each seam where the input has it."""
    times = packet_times(output)
    problems = []
    if len(times) != len(source_times):
        problems.append(f"{len(times)} frames, input {len(source_times)}")
    info = subprocess.run(["mediainfo", "--Inform=Video;%FrameCount%", str(output)], capture_output=True, text=True,
                          check=False).stdout.strip()
    if info != str(len(source_times)):
        problems.append(f"mediainfo counts {info!r} frames, input {len(source_times)}")
    if times and abs((times[-1] - times[0]) - (source_times[-1] - source_times[0])) > frame_s:
        problems.append("duration differs by more than a frame")
    first = 0
    for start, frames in parts:
        if first < len(times) and abs((times[first] - times[0]) - (start - parts[0][0])) > frame_s / 2:
            problems.append(f"seam at frame {first} off")
        first += frames
    return problems


def split_run(source: Path, fmt: dict[str, Any], workers: int, env: dict[str, str], logs: Path
              ) -> tuple[float, float, dict[str, Any], list[tuple[float, int]]]:
    from geminivideo.video.tasks import transcode_task

    queue = f"bench-split-{uuid.uuid4().hex[:6]}"
    started_workers = [procs.start_worker("video", queues=[queue, str(QueueName.TRANSCODE)],
                                          hostname=f"bench-split{i}-{uuid.uuid4().hex[:6]}@localhost", env=env,
                                          log_path=logs / f"split-{queue}-{i}.log", concurrency=1)
                       for i in range(workers)]
    try:
        cpu, started = sum(pool_cpu_s(w) for w in started_workers), time.perf_counter()
        result: dict[str, Any] = transcode_task.apply_async((str(source), fmt), queue=queue).get(
            timeout=TASK_TIMEOUT_S)
        wall = time.perf_counter() - started
        cpu = sum(pool_cpu_s(w) for w in started_workers) - cpu
    finally:
        for worker in started_workers:
            worker.stop()
    parts = split_layout(source, env)
    return wall, cpu, result, parts


def split_layout(source: Path, env: dict[str, str]) -> list[tuple[float, int]]:
    """Where the parts start and how many frames each holds: keyframes after each multiple of SPLIT_SEGMENT_S."""
    segment_s = float(env["SPLIT_SEGMENT_S"])
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                           "-of", "csv=p=0", str(source)], capture_output=True, text=True, check=True)
    packets = sorted((float(t), "K" in f) for t, f in (line.split(",")[:2] for line in done.stdout.split()))
    parts: list[tuple[float, int]] = []
    for pts, key in packets:
        if not parts or (key and pts - packets[0][0] >= segment_s * len(parts) - 1e-6):
            parts.append((pts, 0))
        parts[-1] = (parts[-1][0], parts[-1][1] + 1)
    return parts


def measure(args: argparse.Namespace, source: Path, env: dict[str, str], work: Path) -> list[dict[str, Any]]:
    """``args.runs`` rounds per codec of one plain encode and one split encode per worker count, the plain one
    first in even rounds and last in odd ones; each row gives the medians of its rounds."""
    source_times = packet_times(source)
    rows = []
    for codec in args.codecs:
        fmt = {**FORMATS[codec], "preset": args.preset}
        target = work / f"plain-{codec}.{fmt['container']}"
        plain: dict[str, list[float]] = {"wall": [], "cpu": []}
        split: dict[int, dict[str, Any]] = {n: {"wall": [], "cpu": [], "problems": [], "parts": None}
                                            for n in args.workers}
        for run in range(args.runs):
            for side in ["plain", *args.workers] if run % 2 == 0 else [*args.workers, "plain"]:
                if side == "plain":
                    wall, cpu = timed_command(plain_command(source, fmt, target), target)
                    plain["wall"].append(wall)
                    plain["cpu"].append(cpu)
                    continue
                wall, cpu, result, parts = split_run(source, fmt, int(side), env, work)
                output = Path(result["output_path"])
                found = split[int(side)]
                found["problems"] += check_output(output, source_times, 1 / args.fps, parts)
                output.unlink(missing_ok=True)
                found["wall"].append(wall)
                found["cpu"].append(cpu)
                found["parts"] = result.get("parts")
        for workers, found in split.items():
            rows.append(row(codec, fmt, workers, plain, found, len(source_times)))
            show(rows[-1:])
    return rows


def row(codec: str, fmt: dict[str, Any], workers: int, plain: dict[str, list[float]], found: dict[str, Any],
        frames: int) -> dict[str, Any]:
    plain_s, plain_cpu = median(plain["wall"]), median(plain["cpu"])
    split_s, split_cpu = median(found["wall"]), median(found["cpu"])
    return {"codec": codec, "container": fmt["container"], "preset": fmt["preset"], "workers": workers,
            "parts": found["parts"], "runs": len(found["wall"]), "plain_s": round(plain_s, 3),
            "plain_cpu_s": round(plain_cpu, 3), "split_s": round(split_s, 3), "split_cpu_s": round(split_cpu, 3),
            "ratio": round(split_s / plain_s, 3), "cpu_ratio": round(split_cpu / plain_cpu, 3),
            **run_lists({"plain_s": plain["wall"], "plain_cpu_s": plain["cpu"], "split_s": found["wall"],
                         "split_cpu_s": found["cpu"]}),
            "frames": frames, "verified": not found["problems"], "problems": found["problems"],
            "load_average_1m": load_average_1m()}


def show(rows: list[dict[str, Any]]) -> None:
    print_table(f"{'codec':<5} {'workers':>7} {'parts':>5} {'plain':>8} {'split':>8} {'ratio':>6} {'cpu':>6} "
                f"{'checks':>7} {'load':>5}",
                [f"{r['codec']:<5} {r['workers']:>7} {r['parts'] or 1:>5} {r['plain_s']:>7.1f}s {r['split_s']:>7.1f}s "
                 f"{r['ratio']:>6.2f} {r['cpu_ratio']:>6.2f} {'ok' if r['verified'] else 'FAILED':>7} "
                 f"{r['load_average_1m']:>5.1f}" for r in rows])


def main(results: Path = RESULTS, **defaults: Any) -> None:
    """Run the benchmark from the command line; ``defaults`` override the options' defaults (for
    ``bench.split_overhead``, which writes ``results`` of its own)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of input")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--codecs", nargs="+", choices=sorted(FORMATS), default=["vp9", "av1"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=1, help="alternating rounds (plain first in even rounds)")
    parser.add_argument("--segment-s", type=float, default=60.0, help="SPLIT_SEGMENT_S of the workers")
    parser.add_argument("--preset", default="veryfast")
    parser.set_defaults(**defaults)
    add_run_options(parser, "20 s at 640x360, VP9, 5 s parts")
    args = parser.parse_args()
    apply_quick(parser, args, duration=20.0, size="640x360", codecs=["vp9"], workers=args.workers[:2], segment_s=5.0)
    segment_s = min(args.segment_s, args.duration / 4)
    extra = {"SPLIT_MIN_S": str(max(1.0, args.duration / 2)), "SPLIT_SEGMENT_S": str(segment_s),
             "TRANSCODE_TIMEOUT": str(TASK_TIMEOUT_S)}
    with video_bench("gv-bench-split-", extra) as (work, env):
        source = make_input(work / "media" / "source.mp4", args.duration, args.size, args.fps)
        rows = measure(args, source, env, work)
        print()
        show(rows)
        write_results(output_path(args, results), rows, input={"seconds": args.duration, "size": args.size,
                                                               "fps": args.fps, "segment_s": segment_s})


if __name__ == "__main__":
    main()
