"""Generated speech and videos for caption tests and benchmarks: espeak-ng voices muxed with FFmpeg.

Nothing is committed: every file is synthesised on demand (a few seconds of CPU) from the texts below.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Plain words only (no digits or symbols), so the text is also the reference transcript for WER.
ENGLISH_SENTENCES = (
    "Welcome to our summer sale.",
    "Every pair of running shoes in the store is now half price.",
    "Order today and we will deliver your new shoes for free.",
    "Our customers love the soft and light design of these shoes.",
    "They are perfect for long walks in the park or a morning run.",
    "Visit our website and find the right size and color for you.",
)
GERMAN_SENTENCES = (
    "Guten Tag und herzlich willkommen.",
    "Heute zeigen wir Ihnen unsere neue Kollektion für den Sommer.",
    "Alle Schuhe sind jetzt günstiger als je zuvor.",
)
SPANISH_SENTENCES = (
    "Buenos días y bienvenidos a nuestra tienda.",
    "Hoy presentamos la nueva colección de verano.",
    "Todos los zapatos están ahora a mitad de precio.",
)


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install {' '.join(missing)} (or make setup)")


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def speak(text: str, out_wav: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """espeak-ng speech for ``text`` as a WAV file."""
    require_tools()
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    _run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(out_wav), text])
    return out_wav


def speech_track(sentences: Sequence[str], out_wav: Path, *, voice: str = "en-us", pause_s: float = 0.6,
                 repeat: int = 1, words_per_minute: int = 150) -> Path:
    """Each sentence spoken, with ``pause_s`` of silence between them (repeated ``repeat`` times)."""
    work = out_wav.with_suffix(".parts")
    work.mkdir(parents=True, exist_ok=True)
    pieces = [speak(text, work / f"{i:03d}.wav", voice=voice, words_per_minute=words_per_minute)
              for i, text in enumerate(sentences)]
    ordered = [p for _ in range(repeat) for p in pieces]
    inputs = [arg for p in ordered for arg in ("-i", str(p))]
    chains = "".join(f"[{i}:a]aresample=22050,apad=pad_dur={pause_s}[a{i}];" for i in range(len(ordered)))
    joined = "".join(f"[a{i}]" for i in range(len(ordered)))
    graph = f"{chains}{joined}concat=n={len(ordered)}:v=0:a=1[out]"
    _run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]", "-ac", "1",
          str(out_wav)])
    shutil.rmtree(work, ignore_errors=True)
    return out_wav


def mux_video(audio: Path | None, out: Path, *, duration_s: float | None = None, size: str = "160x120") -> Path:
    """A small H.264 video (a plain colour) carrying ``audio`` as AAC; without audio when ``audio`` is None."""
    out.parent.mkdir(parents=True, exist_ok=True)
    video = ["-f", "lavfi", "-i", f"color=c=navy:s={size}:r=5"]
    sound = ["-i", str(audio)] if audio is not None else []
    length = ["-t", f"{duration_s:.3f}"] if duration_s is not None else ["-shortest"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac", "-b:a", "64k"] if audio is not None else ["-an"]
    if audio is None and duration_s is None:
        raise ValueError("a video without audio needs duration_s")
    _run(["ffmpeg", "-v", "error", "-y", *video, *sound, *length, *codecs, str(out)])
    return out


def silence(out_wav: Path, duration_s: float) -> Path:
    """A WAV of digital silence."""
    _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", f"{duration_s:.3f}",
          str(out_wav)])
    return out_wav


def speech_video(sentences: Sequence[str], out: Path, *, voice: str = "en-us", repeat: int = 1) -> Path:
    """A video whose soundtrack speaks ``sentences``."""
    wav = speech_track(sentences, out.with_suffix(".wav"), voice=voice, repeat=repeat)
    try:
        return mux_video(wav, out)
    finally:
        wav.unlink(missing_ok=True)


def duration_of(path: Path) -> float:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    return float(done.stdout.strip())
