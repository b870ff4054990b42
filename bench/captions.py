"""Benchmark of caption_task against faster-whisper called directly, on the same 60 s speech video.

For each model (tiny.en and base by default):

- **direct**: a separate Python process loads the same model folder with the same options (CPU int8,
  the same thread count, VAD and word timestamps on) and transcribes the video (faster-whisper decodes
  its audio itself); load time, transcription times and the process's peak RSS are recorded;
- **task**: a private redis-server and one real video worker (concurrency 1) run ``caption_task`` on
  the video: once cold (the model loads), then warm; wall times are measured by the caller from send to
  result, the pool process's peak RSS is read from ``/proc/<pid>/status`` (VmHWM).

Direct and warm task runs alternate, so that load from other processes on a shared machine falls on
both sides alike.

The overhead ratio is the median warm task time over the median warm direct transcription: it holds
FFmpeg's audio extraction, cue building, file writing and the broker round trip (target ≤ 1.10).
Absolute speeds vary ±25-60 % between runs on shared machines; compare figures within one run.

    .venv/bin/python -m bench.captions [--seconds 60] [--models tiny.en base] [--runs 2] [--quick]

Prints a table and writes bench/results/captions.json (``--output PATH`` elsewhere). ``--quick`` is a smoke
run (10 s of speech, tiny.en only, 1 warm run per side) that writes no results unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    ROOT,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    start_bench_worker,
    video_bench,
    write_results,
)
from geminivideo import procs
from geminivideo.contracts import QueueName
from tests.support import speech

RESULTS = RESULTS_DIR / "captions.json"
TASK_TIMEOUT_S = 600


# ─── inputs ───────────────────────────────────────────────────────────────────────────────────────
def speech_video(folder: Path, seconds: float) -> Path:
    """English speech, exactly ``seconds`` long, in a small H.264 + AAC video."""
    per_pass = speech.duration_of(speech.speech_track(speech.ENGLISH_SENTENCES, folder / "probe.wav"))
    repeat = int(seconds // per_pass) + 1
    track = speech.speech_track(speech.ENGLISH_SENTENCES, folder / "long.wav", repeat=repeat)
    return speech.mux_video(track, folder / f"speech-{int(seconds)}s.mp4", duration_s=seconds)


# ─── direct faster-whisper, in its own process ────────────────────────────────────────────────────
def direct_child(model_name: str, video: str) -> None:
    """Child process: load the model, then transcribe once per "run" line on stdin, answering JSON lines."""
    from faster_whisper import WhisperModel

    from geminivideo.video.whisper_models import cpu_threads, resolve_model

    folder = resolve_model(model_name).path
    started = time.perf_counter()
    model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=cpu_threads(),
                         local_files_only=True)
    print(json.dumps({"load_s": time.perf_counter() - started}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        started = time.perf_counter()
        segments, _info = model.transcribe(video, vad_filter=True, vad_parameters={"min_silence_duration_ms": 500},
                                           word_timestamps=True)
        words = sum(len(s.words or ()) for s in segments)  # the generator decodes lazily: consume it all
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"transcribe_s": elapsed, "words": words, "peak_rss_mb": peak_mb}), flush=True)


class Direct:
    """The direct side, kept alive between runs so direct and task runs can alternate (fair under load)."""

    def __init__(self, model_name: str, video: Path, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "bench.captions", "--direct-child", model_name, str(video)]
        self._proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
        self.load_s = float(self._answer()["load_s"])

    def _answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"direct faster-whisper process exited with {self._proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=60)


# ─── the task on a real worker ────────────────────────────────────────────────────────────────────
def pool_peak_mb(worker: procs.ManagedProcess) -> float:
    """VmHWM (peak resident memory) of the worker's pool process."""
    import psutil

    children = psutil.Process(worker.pid).children(recursive=True)
    peaks = []
    for child in children:
        status = Path(f"/proc/{child.pid}/status").read_text()
        line = next(row for row in status.splitlines() if row.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def timed_task(video: Path, model_name: str) -> tuple[float, dict[str, Any]]:
    from geminivideo.video.tasks import caption_task

    started = time.perf_counter()
    result: dict[str, Any] = caption_task.delay(str(video), model=model_name).get(timeout=TASK_TIMEOUT_S)
    return time.perf_counter() - started, result


def measure(model_name: str, video: Path, runs: int, env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Cold task run, then ``runs`` rounds of one direct and one warm task run, alternating."""
    worker = start_bench_worker("video", "captions", str(QueueName.CAPTION), env, logs)
    direct = Direct(model_name, video, env)
    try:
        cold_s, _ = timed_task(video, model_name)
        direct_runs, task_runs, results = [], [], []
        for _ in range(runs):
            direct_runs.append(direct.run())
            wall_s, result = timed_task(video, model_name)
            task_runs.append(wall_s)
            results.append(result)
        task_peak = pool_peak_mb(worker)
    finally:
        direct.close()
        worker.stop()
    return {"direct_load_s": direct.load_s, "direct": direct_runs, "cold_s": cold_s, "warm_s": task_runs,
            "results": results, "task_peak_rss_mb": task_peak}


# ─── report ───────────────────────────────────────────────────────────────────────────────────────
def summarise(model_name: str, seconds: float, runs: dict[str, Any]) -> dict[str, Any]:
    direct_times = [r["transcribe_s"] for r in runs["direct"]]
    direct_warm = statistics.median(direct_times)
    task_warm = statistics.median(runs["warm_s"])
    last = runs["results"][-1]
    return {
        "model": model_name, "audio_s": seconds,
        "direct_load_s": round(runs["direct_load_s"], 3), "direct_transcribe_s": round(direct_warm, 3),
        "direct_rtf": round(direct_warm / seconds, 4),
        "direct_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["direct"]), 1),
        "task_cold_s": round(runs["cold_s"], 3), "task_warm_s": round(task_warm, 3),
        "task_rtf": round(task_warm / seconds, 4), "task_peak_rss_mb": round(runs["task_peak_rss_mb"], 1),
        "overhead_ratio": round(task_warm / direct_warm, 3),
        "task_transcribe_s": [r["transcribe_s"] for r in runs["results"]],
        "task_model_cached": all(r["model_cached"] for r in runs["results"]),
        "cues": last["num_cues"], "language": last["language"], "direct_words": runs["direct"][-1]["words"],
        "runs_direct_s": [round(t, 3) for t in direct_times],
        "runs_task_warm_s": [round(t, 3) for t in runs["warm_s"]],
        "load_average_1m": load_average_1m(),
    }


def show(rows: list[dict[str, Any]]) -> None:
    print_table(
        f"{'model':<8} {'audio':>6} {'direct load':>11} {'direct':>8} {'RTF':>6} {'peak MB':>8} "
        f"{'task cold':>9} {'task warm':>9} {'RTF':>6} {'peak MB':>8} {'overhead':>8}",
        [f"{r['model']:<8} {r['audio_s']:>5.0f}s {r['direct_load_s']:>10.2f}s {r['direct_transcribe_s']:>7.2f}s "
         f"{r['direct_rtf']:>6.3f} {r['direct_peak_rss_mb']:>8.0f} {r['task_cold_s']:>8.2f}s "
         f"{r['task_warm_s']:>8.2f}s {r['task_rtf']:>6.3f} {r['task_peak_rss_mb']:>8.0f} "
         f"{r['overhead_ratio']:>7.2f}x" for r in rows])


def whisper_env() -> dict[str, str]:
    """The workers' and the direct side's Whisper settings: the local model cache, CPU, no downloads."""
    return {"WHISPER_CACHE_DIR": os.environ.get("WHISPER_CACHE_DIR", str(ROOT / "var" / "whisper-models")),
            "WHISPER_DEVICE": "cpu", "WHISPER_ALLOW_DOWNLOAD": "false", "HF_HUB_OFFLINE": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--runs", type=int, default=2, help="warm runs per side")
    parser.add_argument("--direct-child", nargs=2, metavar=("MODEL", "VIDEO"), help=argparse.SUPPRESS)
    add_run_options(parser, "10 s of speech, tiny.en only, 1 warm run per side")
    args = parser.parse_args()
    if args.direct_child:
        direct_child(args.direct_child[0], args.direct_child[1])
        return
    apply_quick(parser, args, seconds=10.0, models=["tiny.en"], runs=1)
    with video_bench("gv-bench-captions-", whisper_env()) as (work, env):
        video = speech_video(work / "media", args.seconds)
        rows = [summarise(name, args.seconds, measure(name, video, args.runs, env, work)) for name in args.models]
        show(rows)
        write_results(output_path(args, RESULTS), rows)


if __name__ == "__main__":
    main()
