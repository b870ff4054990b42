"""Whisper captions for a video: the pipeline behind ``caption_task`` (DESIGN.md §5).

Steps: check the input path and the model → probe for an audio stream → extract 16 kHz mono audio
with FFmpeg into a scratch folder in TEMP_DIR (removed afterwards, also on failure or time limit) →
transcribe with faster-whisper (voice activity detection on, word timestamps for cue splitting) →
build readable cues → write SRT / WebVTT / JSON into RENDER_DIR, all or nothing.

Progress: 0–10 % from FFmpeg's own ``-progress`` output, 10–95 % from the end time of each transcribed
segment against the audio's duration, then writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
import wave
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geminivideo.config import get_settings
from geminivideo.contracts import CaptionJob, CaptionResult, utcnow
from geminivideo.errors import InvalidPayload, MediaUnreadable, OutOfSpace, UnsupportedOption
from geminivideo.leases import fencing
from geminivideo.progress import ProgressCallback, no_progress
from geminivideo.telemetry.tracing import traced
from geminivideo.video.captions import models as whisper_models
from geminivideo.video.captions.subtitles import Cue, Segment, Word, build_cues, to_srt, to_vtt
from geminivideo.video.ffmpeg import MediaInfo, input_args, partial_path, probe, run_ffmpeg
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.media import ensure_output_dir, resolve_input

SAMPLE_RATE = 16_000
EXTRACT_SPAN = (0.0, 10.0)
TRANSCRIBE_SPAN = (10.0, 95.0)
# Pauses under half a second stay inside one speech chunk, so sentences are not cut mid-breath.
VAD_PARAMETERS = {"min_silence_duration_ms": 500}
UNDETERMINED = "und"  # ISO 639-2 "undetermined": no speech, so no language to detect


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    probabilities: list[list[float]]  # per segment, per word: Whisper's confidence
    transcribe_s: float
    batched: bool = False


def caption_video(job: CaptionJob, on_progress: ProgressCallback = no_progress) -> CaptionResult:
    """Caption ``job.video_path``; return where the files are and what was heard."""
    started = time.monotonic()
    settings = get_settings()
    source = resolve_input(job.video_path)
    on_progress(0, f"loading Whisper model {job.model}")
    handle = whisper_models.get_model(job.model)
    check_language(job.language, handle.loaded)
    media = probe_audio(source)
    out_dir = ensure_output_dir(settings.render_dir)
    with scratch_dir(settings.temp_dir) as scratch, in_use(source, scratch):
        wav = extract_audio(source, media, scratch, on_progress, timeout_s=settings.caption_timeout)
        transcript = transcribe(handle.loaded, read_wav(wav), job.language, on_progress)
    cues = build_cues(transcript.segments)
    on_progress(TRANSCRIBE_SPAN[1], f"writing {', '.join(job.formats)} ({len(cues)} cues)")
    paths = write_outputs(out_dir, output_stem(source), job, transcript, cues)
    return _result(job, handle, transcript, cues, paths, time.monotonic() - started)


# ─── checks ───────────────────────────────────────────────────────────────────────────────────────
def check_language(language: str | None, loaded: whisper_models.LoadedModel) -> None:
    """Refuse a language the model cannot transcribe, naming what would work instead."""
    if language is None:
        return
    name = loaded.resolved.name
    if not loaded.multilingual and language != "en":
        raise UnsupportedOption(
            f"language {language!r} cannot be transcribed by the English-only model {name!r}: use a multilingual "
            f"model (e.g. 'base') or leave language unset"
        )
    supported: Sequence[str] = loaded.model.supported_languages
    if language not in supported:
        raise InvalidPayload(f"language: {language!r} is not a language Whisper knows ({', '.join(supported)})")


def probe_audio(source: Path) -> MediaInfo:
    info = probe(source, require_video=False, require_audio=False)
    if not info.has_audio:
        raise MediaUnreadable(
            f"video_path: {source.name} has no audio stream, so there is nothing to caption "
            "(give a file with an audio track)"
        )
    if info.duration <= 0:
        raise MediaUnreadable(f"video_path: {source.name} has an unknown or zero duration (truncated or corrupt?)")
    return info


# ─── audio ────────────────────────────────────────────────────────────────────────────────────────
@contextlib.contextmanager
def scratch_dir(temp_root: Path) -> Iterator[Path]:
    """A private folder in TEMP_DIR, removed when the block ends however it ends."""
    temp_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="caption-", dir=temp_root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def extract_audio(
    source: Path, media: MediaInfo, scratch: Path, on_progress: ProgressCallback, *, timeout_s: float
) -> Path:
    """The first audio stream as 16 kHz mono 16-bit WAV, which is what Whisper consumes."""
    target = scratch / "audio.wav"
    args = [*input_args(source), "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
            "-c:a", "pcm_s16le", "-f", "wav", str(target)]
    run_ffmpeg(args, expected_duration_s=media.duration, on_progress=on_progress, progress_span=EXTRACT_SPAN,
               timeout_s=timeout_s, what="audio extraction")
    return target


def read_wav(path: Path) -> np.ndarray:
    """Samples as float32 in [-1, 1], so faster-whisper need not decode the file again."""
    with wave.open(str(path), "rb") as reader:
        if reader.getsampwidth() != 2 or reader.getnchannels() != 1 or reader.getframerate() != SAMPLE_RATE:
            raise MediaUnreadable(f"{path.name}: expected 16-bit mono {SAMPLE_RATE} Hz audio from the extraction")
        frames = reader.readframes(reader.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


# ─── transcription ────────────────────────────────────────────────────────────────────────────────
@traced("whisper.transcribe")
def transcribe(
    loaded: whisper_models.LoadedModel, audio: np.ndarray, language: str | None, on_progress: ProgressCallback
) -> Transcript:
    """Run Whisper over ``audio``; report progress as segments arrive (the generator decodes lazily)."""
    started = time.monotonic()
    duration = len(audio) / SAMPLE_RATE
    batched = use_batched(duration)
    options: dict[str, Any] = {"language": language, "vad_filter": True, "vad_parameters": VAD_PARAMETERS,
                               "word_timestamps": True}
    if batched:
        from faster_whisper import BatchedInferencePipeline  # a thin wrapper around the loaded model

        pipeline = BatchedInferencePipeline(loaded.model)
        pieces, info = pipeline.transcribe(audio, batch_size=get_settings().caption_batch_size, **options)
    else:
        pieces, info = loaded.model.transcribe(audio, **options)
    segments: list[Segment] = []
    probabilities: list[list[float]] = []
    low, high = TRANSCRIBE_SPAN
    for piece in pieces:
        segment, confidence = _segment(piece)
        segments.append(segment)
        probabilities.append(confidence)
        done = min(1.0, segment.end / duration) if duration else 1.0
        on_progress(low + (high - low) * done, f"transcribed {segment.end:.1f} of {duration:.1f} s of audio")
    detected, probability = _language(info, language, loaded)
    return Transcript(detected, probability, duration, segments, probabilities, time.monotonic() - started,
                      batched)


def use_batched(duration_s: float) -> bool:
    """Batch VAD chunks for audio of at least CAPTION_BATCH_MIN_S, unless CAPTION_BATCHING is off.

    Measured on 2 CPU cores (bench/captions.py, 5 alternating rounds): 0.70-0.89x the wall time of sequential
    decoding with WER within 0.01; short audio has one or two chunks, so batching has nothing to gain there.
    """
    settings = get_settings()
    return settings.caption_batching and duration_s >= settings.caption_batch_min_s


def _segment(piece: Any) -> tuple[Segment, list[float]]:
    words = tuple(Word(float(w.start), float(w.end), str(w.word)) for w in piece.words or ())
    confidence = [round(float(w.probability), 4) for w in piece.words or ()]
    return Segment(float(piece.start), float(piece.end), str(piece.text).strip(), words), confidence


def _language(info: Any, requested: str | None, loaded: whisper_models.LoadedModel) -> tuple[str, float]:
    # With no speech left after VAD, Whisper's "detected" language is a guess from silence: say so.
    if requested is None and loaded.multilingual and info.duration_after_vad <= 0:
        return UNDETERMINED, 0.0
    return str(info.language), round(float(info.language_probability), 4)


# ─── outputs ──────────────────────────────────────────────────────────────────────────────────────
def output_stem(source: Path) -> str:
    # A unique suffix: two captions of the same video (other model, other language) never collide.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem).strip("._") or "captions"
    return f"{safe[:80]}-{uuid.uuid4().hex[:8]}"


def write_outputs(
    out_dir: Path, stem: str, job: CaptionJob, transcript: Transcript, cues: Sequence[Cue]
) -> dict[str, Path]:
    renderers = {
        "srt": lambda: to_srt(cues),
        "vtt": lambda: to_vtt(cues),
        "json": lambda: json.dumps(transcript_json(job, transcript, cues), ensure_ascii=False, indent=1) + "\n",
    }
    files: dict[str, Path] = {fmt: out_dir / f"{stem}.{fmt}" for fmt in dict.fromkeys(job.formats)}
    write_atomically({path: renderers[fmt]() for fmt, path in files.items()})
    return files


def transcript_json(job: CaptionJob, transcript: Transcript, cues: Sequence[Cue]) -> dict[str, Any]:
    segments = []
    for segment, confidence in zip(transcript.segments, transcript.probabilities, strict=True):
        item: dict[str, Any] = {"start": segment.start, "end": segment.end, "text": segment.text}
        if job.word_timestamps:
            item["words"] = [{"start": w.start, "end": w.end, "word": w.text.strip(), "probability": p}
                             for w, p in zip(segment.words, confidence, strict=True)]
        segments.append(item)
    return {
        "language": transcript.language, "language_probability": transcript.language_probability,
        "duration": round(transcript.duration, 3), "model": job.model, "segments": segments,
        "cues": [{"start": c.start, "end": c.end, "text": c.text} for c in cues],
    }


def write_atomically(files: Mapping[Path, str]) -> None:
    """Write every file under a hidden temporary name, then rename them all; on failure none remain."""
    placed: list[Path] = []
    temps = {final: partial_path(final) for final in files}
    try:
        for final, text in files.items():
            with temps[final].open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        fencing.check_current()  # only the attempt that holds the task may put captions in place
        for final, temp in temps.items():
            os.replace(temp, final)
            placed.append(final)
    except BaseException as exc:
        for path in [*temps.values(), *placed]:
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
            raise OutOfSpace(f"no space left to write captions into {next(iter(files)).parent}") from exc
        raise


def _result(
    job: CaptionJob, handle: whisper_models.ModelHandle, transcript: Transcript, cues: Sequence[Cue],
    paths: Mapping[str, Path], elapsed_s: float,
) -> CaptionResult:
    loaded = handle.loaded

    def path_of(fmt: str) -> str | None:
        return str(paths[fmt]) if fmt in paths else None

    return CaptionResult(
        srt_path=path_of("srt"), vtt_path=path_of("vtt"), json_path=path_of("json"),
        language=transcript.language, language_probability=transcript.language_probability,
        num_segments=len(transcript.segments), num_cues=len(cues), duration=round(transcript.duration, 3),
        model=loaded.resolved.name, model_source=loaded.resolved.source, device=loaded.device,
        compute_type=loaded.compute_type, model_cached=handle.cached, model_loads=handle.loads_in_process,
        model_load_s=0.0 if handle.cached else round(loaded.load_s, 3), transcribe_s=round(transcript.transcribe_s, 3),
        processing_s=round(elapsed_s, 3), worker_pid=os.getpid(), timestamp=utcnow(), batched=transcript.batched,
    )
