"""Running FFmpeg and ffprobe safely: allow-listed protocols and demuxers, own process group, progress.

- Inputs are opened with ``-protocol_whitelist file,pipe`` and a demuxer allow-list of real media
  containers, so an HLS playlist or concat list disguised as ``.mp4`` is refused instead of followed.
- FFmpeg runs in its own session and dies with its parent (``PR_SET_PDEATHSIG``), so a killed pool
  child or a hard time limit never leaves an encoder running; any exception (soft time limit,
  revoke) kills the whole group before it propagates.
- Each child runs under resource limits (address space, CPU time, file size, open files; see
  ``security/rlimits.py``), so a decoder bug or a decompression bomb fails instead of taking the host.
- Progress comes from FFmpeg's own ``-progress pipe:1`` output, scaled against the expected duration.
- ``atomic_output`` writes under a hidden temporary name and renames on success only, and only while the
  running attempt still holds its task's lease (``leases/fencing.py``); a lost attempt's FFmpeg is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from geminivideo.errors import MediaUnreadable, OutOfSpace, ProcessingFailed
from geminivideo.leases import fencing
from geminivideo.progress import ProgressCallback
from geminivideo.security import rlimits
from geminivideo.telemetry.tracing import traced

PROTOCOL_WHITELIST = "file,pipe"
# Demuxers of real media containers and still images; notably absent: hls, concat, lavfi, tee, ffmetadata.
MEDIA_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,ogg,wav,mp3,aac,flac,mxf,mpeg,asf,ivf,h264,hevc,"
    "gif,image2,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe"
)
PARTIAL_MARKER = ".partial-"
STDERR_TAIL_LINES = 25
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def input_args(path: Path | str) -> list[str]:
    """``-i`` arguments for an untrusted media file: only local files, only media demuxers."""
    return ["-protocol_whitelist", PROTOCOL_WHITELIST, "-format_whitelist", MEDIA_DEMUXERS, "-i", str(path)]


# ─── ffprobe ──────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format_name: str
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None

    @property
    def aspect(self) -> float:
        return self.width / self.height if self.height else 0.0


def _fps(stream: dict[str, Any]) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        value = stream.get(key) or "0/0"
        with contextlib.suppress(ValueError, ZeroDivisionError):
            rate = float(Fraction(value))
            if rate > 0:
                return rate
    return 0.0


def probe_json(path: Path | str, *, timeout_s: float = 60) -> dict[str, Any]:
    cmd = ["ffprobe", "-v", "error", "-protocol_whitelist", PROTOCOL_WHITELIST, "-format_whitelist",
           MEDIA_DEMUXERS, "-show_format", "-show_streams", "-of", "json", str(path)]
    limits = rlimits.from_settings(probe=True)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False,
                              start_new_session=True, preexec_fn=rlimits.preexec(limits, _die_with_parent))
    except subprocess.TimeoutExpired:
        raise MediaUnreadable(f"{path}: ffprobe did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        reason = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit code {done.returncode}"
        raise MediaUnreadable(f"{path}: not a readable media file ({reason})")
    data: dict[str, Any] = json.loads(done.stdout or "{}")
    return data


def probe(path: Path | str, *, require_video: bool = True, require_audio: bool = False) -> MediaInfo:
    """Describe a media file; raise MediaUnreadable for corrupt files or missing required streams."""
    data = probe_json(path)
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float(fmt.get("duration") or (video or audio or {}).get("duration") or 0.0)
    if require_video and video is None:
        raise MediaUnreadable(f"{path}: has no video stream")
    if require_audio and audio is None:
        raise MediaUnreadable(f"{path}: has no audio stream")
    if (require_video or require_audio) and duration <= 0:
        raise MediaUnreadable(f"{path}: duration is unknown or zero (truncated or corrupt file?)")
    return MediaInfo(
        path=Path(path), format_name=str(fmt.get("format_name", "")), duration=duration,
        has_video=video is not None, has_audio=audio is not None,
        width=int((video or {}).get("width") or 0), height=int((video or {}).get("height") or 0),
        fps=_fps(video or {}), video_codec=(video or {}).get("codec_name"), pix_fmt=(video or {}).get("pix_fmt"),
        audio_codec=(audio or {}).get("codec_name"),
        sample_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
    )


# ─── ffmpeg ───────────────────────────────────────────────────────────────────────────────────────────
def _out_time_s(key: str, value: str) -> float | None:
    # FFmpeg prints out_time_us and out_time_ms (also microseconds, a known misnomer) in every block: read one.
    if key == "out_time_us":
        with contextlib.suppress(ValueError):
            return int(value) / 1_000_000
    return None


class _StderrTail(threading.Thread):
    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def run(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.lines.append(line)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@traced("ffmpeg")
def run_ffmpeg(
    args: Sequence[str],
    *,
    expected_duration_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    progress_span: tuple[float, float] = (0.0, 100.0),
    timeout_s: float | None = None,
    what: str = "ffmpeg",
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Run ``ffmpeg <args>``; report progress within ``progress_span``; raise a clear error on failure.

    ``args`` are everything after the global options (inputs built with ``input_args``, filters, output).
    ``env`` adds variables for this FFmpeg only (e.g. ``CUDA_DEVICE_ORDER``), never the worker's own.
    Returns the last lines of stderr (a filter's report, such as loudnorm's measurement).
    """
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
           *args]
    limits = rlimits.from_settings().for_command(cmd, gpu_env=bool(env))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=rlimits.preexec(limits, _die_with_parent),
                            env={**os.environ, **env} if env else None)
    stderr = _StderrTail(proc.stderr)
    stderr.start()
    timed_out = threading.Event()
    watchdog = None
    if timeout_s is not None:
        def _expire() -> None:
            timed_out.set()
            _kill_group(proc)

        watchdog = threading.Timer(timeout_s, _expire)
        watchdog.daemon = True
        watchdog.start()
    try:
        with fencing.guarding(proc.pid):  # an attempt that loses its lease kills this FFmpeg's group at once
            _follow_progress(proc, expected_duration_s, on_progress, progress_span, what)
            proc.wait()
    except BaseException:
        # Soft time limit, revoke (SystemExit from the pool's SIGTERM handler), Ctrl-C: no orphan encoder.
        _kill_group(proc)
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        stderr.join(timeout=5)
    _raise_for_exit(proc.returncode, list(stderr.lines), what, timed_out.is_set(), timeout_s)
    return list(stderr.lines)


def _follow_progress(
    proc: subprocess.Popen[bytes], expected_s: float | None, on_progress: ProgressCallback | None,
    span: tuple[float, float], what: str,
) -> None:
    assert proc.stdout is not None
    low, high = span
    for raw in proc.stdout:
        key, _, value = raw.decode(errors="replace").strip().partition("=")
        seconds = _out_time_s(key, value)
        if seconds is None or on_progress is None or not expected_s:
            continue
        fraction = max(0.0, min(1.0, seconds / expected_s))
        on_progress(low + (high - low) * fraction, f"{what}: {seconds:.1f} of {expected_s:.1f} s")


def _raise_for_exit(code: int | None, tail: list[str], what: str, timed_out: bool, timeout_s: float | None) -> None:
    if code == 0:
        return
    text = "\n".join(tail[-10:])
    if timed_out:
        raise ProcessingFailed(f"{what} exceeded its time limit of {timeout_s:.0f} s and was killed")
    if "Cannot allocate memory" in text:
        raise ProcessingFailed(f"{what} needed more memory than FFMPEG_MAX_MEMORY_MB allows (a frame this large "
                               f"is refused: a decompression bomb, or raise the limit)\n{text}")
    if code in (-signal.SIGXCPU, -signal.SIGXFSZ):
        limit = "FFMPEG_MAX_CPU_S" if code == -signal.SIGXCPU else "FFMPEG_MAX_FILE_SIZE_MB"
        raise ProcessingFailed(f"{what} was stopped at its {limit} limit\n{text}")
    if "No space left on device" in text:
        raise OutOfSpace(f"{what} failed: no space left on the output device\n{text}")
    raise ProcessingFailed(f"{what} failed (exit code {code}):\n{text or '(no error output)'}")


# ─── outputs ──────────────────────────────────────────────────────────────────────────────────────────
def partial_path(final: Path) -> Path:
    """The hidden temporary name an output is written under before its atomic rename."""
    return final.with_name(f".{final.stem}{PARTIAL_MARKER}{uuid.uuid4().hex[:12]}{final.suffix}")


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and PARTIAL_MARKER in path.name


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success, delete it on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = partial_path(final)
    try:
        yield temp
        if not temp.exists() or temp.stat().st_size == 0:
            raise ProcessingFailed(f"no output was written for {final.name}")
        fencing.check_current()  # only the attempt that holds the task may replace the output
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
