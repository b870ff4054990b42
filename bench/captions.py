"""Benchmark: caption_task with batched Whisper against plain sequential faster-whisper, on the same audio.

For each model (tiny.en and base) and each length of espeak-ng speech (60 s and 5 min by default):

- **sequential**: a separate Python process loads the model folder (on ``--device``: CPU int8 by default, CUDA
  float16 with ``--device cuda``; the workers' thread count)
  and calls ``WhisperModel.transcribe`` on the 16 kHz mono WAV (VAD and word timestamps on, as the task);
- **batched task**: one real video worker with ``CAPTION_BATCH_MIN_S=0`` (``BatchedInferencePipeline``,
  ``CAPTION_BATCH_SIZE``) runs ``caption_task`` on a video carrying that same WAV losslessly (PCM in
  Matroska), so both sides hear identical samples; its time is measured from send to result.

Sides alternate for ``--rounds`` rounds (5 by default; the first side swaps each round), after one
untimed warm-up task that loads the model. Each side records wall and CPU seconds, segment and word
counts and the WER against the spoken text. The ratio is the median batched task time over the median
sequential time (issue target: ≤ 0.6 for base on 5 min). Load average is recorded: this machine is shared.

    .venv/bin/python -m bench.captions [--seconds 60 300] [--models tiny.en base] [--rounds 5] [--device cpu]
                                       [--quick]

Prints a table and writes bench/results/captions.json (``--output PATH`` elsewhere). ``--quick`` (20 s of
speech, tiny.en, 1 round) writes nothing unless ``--output`` is given.
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
    pool_cpu_s,
    print_table,
    start_bench_worker,
    video_bench,
    write_results,
)
from geminivideo import procs
from tests.support import speech

RESULTS = RESULTS_DIR / "captions.json"
TASK_TIMEOUT_S = 1800
VAD = {"min_silence_duration_ms": 500}
QUEUE = "bench-captions"


# ─── inputs ───────────────────────────────────────────────────────────────────────────────────────
def speech_inputs(folder: Path, seconds: float) -> tuple[Path, Path, str]:
    """(16 kHz mono WAV, video carrying it losslessly, the text spoken) of about ``seconds`` of speech."""
    sentences = speech.ENGLISH_SENTENCES
    per_sentence = speech.duration_of(speech.speech_track(sentences, folder / "probe.wav")) / len(sentences)
    # Whole sentences, cycled until about ``seconds``: the reference text is exactly what is spoken.
    spoken = [sentences[i % len(sentences)] for i in range(max(1, round(seconds / per_sentence)))]
    track = speech.speech_track(spoken, folder / f"track-{int(seconds)}.wav")
    wav = folder / f"speech-{int(seconds)}s.wav"
    video = folder / f"speech-{int(seconds)}s.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(track), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                    str(wav)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=160x120:r=5", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le", str(video)],
                   check=True)
    return wav, video, " ".join(spoken)


def word_error_rate(said: str, heard: str) -> float:
    import jiwer

    normalise = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                               jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
    return round(float(jiwer.wer(said, heard, reference_transform=normalise, hypothesis_transform=normalise)), 4)


# ─── sequential faster-whisper, in its own process ────────────────────────────────────────────────
def sequential_child(model_name: str, wav: str) -> None:
    """Child process: load the model, then transcribe once per "run" line on stdin, answering JSON lines."""
    from faster_whisper import WhisperModel

    from geminivideo.config import get_settings
    from geminivideo.video.captions.models import choose_device, cpu_threads, resolve_model

    choice = choose_device(get_settings().whisper_device)  # the worker's WHISPER_DEVICE, so both sides match
    model = WhisperModel(str(resolve_model(model_name).path), device=choice.device, compute_type=choice.compute_type,
                         cpu_threads=cpu_threads(), local_files_only=True)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        segments = list(model.transcribe(wav, vad_filter=True, vad_parameters=VAD, word_timestamps=True)[0])
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        print(json.dumps({"wall_s": elapsed, "cpu_s": cpu, "segments": len(segments),
                          "words": sum(len(s.words or ()) for s in segments),
                          "text": " ".join(s.text.strip() for s in segments)}), flush=True)


class Sequential:
    """The sequential side, kept alive between rounds so the two sides can alternate."""

    def __init__(self, model_name: str, wav: Path, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "bench.captions", "--sequential-child", model_name, str(wav)]
        self._proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"sequential faster-whisper process exited with {self._proc.wait()}")
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


# ─── the batched task on a real worker ────────────────────────────────────────────────────────────
def batched_task(worker: procs.ManagedProcess, video: Path, model_name: str) -> dict[str, Any]:
    from geminivideo.video.tasks import caption_task

    cpu, started = pool_cpu_s(worker), time.perf_counter()
    result: dict[str, Any] = caption_task.apply_async(
        args=[str(video)], kwargs={"model": model_name, "formats": ["json"], "word_timestamps": True}, queue=QUEUE,
    ).get(timeout=TASK_TIMEOUT_S)
    elapsed, cpu = time.perf_counter() - started, pool_cpu_s(worker) - cpu
    document = json.loads(Path(result["json_path"]).read_text(encoding="utf-8"))
    Path(result["json_path"]).unlink(missing_ok=True)
    return {"wall_s": elapsed, "cpu_s": cpu, "segments": len(document["segments"]), "batched": result["batched"],
            "words": sum(len(s.get("words", [])) for s in document["segments"]),
            "text": " ".join(s["text"] for s in document["segments"])}


def measure(model_name: str, seconds: float, rounds: int, env: dict[str, str], work: Path) -> dict[str, Any]:
    wav, video, said = speech_inputs(work / "media", seconds)
    worker = start_bench_worker("video", f"captions-{model_name}", QUEUE, env, work)
    sequential = Sequential(model_name, wav, env)
    runs: dict[str, list[dict[str, Any]]] = {"sequential": [], "batched": []}
    try:
        batched_task(worker, video, model_name)  # warm-up: the worker loads the model once
        for round_no in range(rounds):
            for side in ("sequential", "batched") if round_no % 2 == 0 else ("batched", "sequential"):
                runs[side].append(sequential.run() if side == "sequential" else batched_task(worker, video, model_name))
    finally:
        sequential.close()
        worker.stop()
    return summarise(model_name, speech.duration_of(wav), said, runs)


# ─── report ───────────────────────────────────────────────────────────────────────────────────────
def summarise(model_name: str, audio_s: float, said: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model_name, "audio_s": round(audio_s, 1), "rounds": len(runs["sequential"])}
    for side, samples in runs.items():
        last = samples[-1]
        row |= {f"{side}_s": round(statistics.median(s["wall_s"] for s in samples), 3),
                f"{side}_cpu_s": round(statistics.median(s["cpu_s"] for s in samples), 3),
                f"{side}_segments": last["segments"], f"{side}_words": last["words"],
                f"{side}_wer": word_error_rate(said, last["text"]),
                f"runs_{side}_s": [round(s["wall_s"], 3) for s in samples],
                f"runs_{side}_cpu_s": [round(s["cpu_s"], 3) for s in samples]}
    row["batched_used"] = all(s["batched"] for s in runs["batched"])
    row["ratio"] = round(row["batched_s"] / row["sequential_s"], 3)
    row["cpu_ratio"] = round(row["batched_cpu_s"] / row["sequential_cpu_s"], 3)
    row["sequential_rtf"] = round(row["sequential_s"] / audio_s, 4)
    row["batched_rtf"] = round(row["batched_s"] / audio_s, 4)
    row["load_average_1m"] = load_average_1m()
    return row


def show(rows: list[dict[str, Any]]) -> None:
    print_table(
        f"{'model':<8} {'audio':>6} {'sequential':>10} {'batched':>9} {'ratio':>6} {'cpu ratio':>9} "
        f"{'WER seq':>8} {'WER bat':>8} {'words':>11} {'load':>5}",
        [f"{r['model']:<8} {r['audio_s']:>5.0f}s {r['sequential_s']:>9.2f}s {r['batched_s']:>8.2f}s "
         f"{r['ratio']:>6.2f} {r['cpu_ratio']:>9.2f} {r['sequential_wer']:>8.3f} {r['batched_wer']:>8.3f} "
         f"{r['sequential_words']:>5}/{r['batched_words']:<5} {r['load_average_1m']:>5.1f}" for r in rows])


def whisper_env(batch_size: int, device: str) -> dict[str, str]:
    """Both sides' Whisper settings (local models, ``device``, no downloads); the worker batches every input."""
    return {"WHISPER_CACHE_DIR": os.environ.get("WHISPER_CACHE_DIR", str(ROOT / "var" / "whisper-models")),
            "WHISPER_DEVICE": device, "WHISPER_ALLOW_DOWNLOAD": "false", "HF_HUB_OFFLINE": "1",
            "CAPTION_BATCHING": "true", "CAPTION_BATCH_MIN_S": "0", "CAPTION_BATCH_SIZE": str(batch_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (one run per side each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="both sides on this device: cpu (int8) or cuda (float16, on a GPU host; needs --output)")
    parser.add_argument("--sequential-child", nargs=2, metavar=("MODEL", "WAV"), help=argparse.SUPPRESS)
    add_run_options(parser, "20 s of speech, tiny.en only, 1 round")
    args = parser.parse_args()
    if args.sequential_child:
        sequential_child(*args.sequential_child)
        return
    apply_quick(parser, args, seconds=[20.0], models=["tiny.en"], rounds=1)
    if args.device == "cuda" and args.output is None and not args.quick:
        parser.error("--device cuda needs --output PATH: bench/results/captions.json is the CPU run the README reports")
    with video_bench("gv-bench-captions-", whisper_env(args.batch_size, args.device)) as (work, env):
        rows: list[dict[str, Any]] = []
        configurations = [(seconds, name) for seconds in args.seconds for name in args.models]
        for seconds, name in configurations:
            rows.append(measure(name, seconds, args.rounds, env, work))
            show(rows)
            # Written after each configuration, marked incomplete until the last: a long run cut short keeps
            # what it measured, and says so.
            write_results(output_path(args, RESULTS), rows, batch_size=args.batch_size, device=args.device,
                          complete=len(rows) == len(configurations))


if __name__ == "__main__":
    main()
