"""Generated test media and ffprobe checks, so no test depends on a committed binary file.

Inputs come from FFmpeg's own test sources (``testsrc2``, ``color``, ``sine``), small and short so the
whole suite stays fast on two shared cores. Other test modules may import these helpers: keep them
general (no knowledge of a particular task).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

_FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def _run(args: Sequence[str], timeout_s: float = 120) -> None:
    done = subprocess.run([*_FFMPEG, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def make_video(
    path: Path,
    *,
    duration_s: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: float = 25,
    audio: bool = True,
    pix_fmt: str = "yuv420p",
    tone_hz: int = 440,
    volume_db: float = -20.0,
    source: str = "testsrc2",
    color: str = "navy",
    faststart: bool = True,
) -> Path:
    """A clip from FFmpeg's test sources; the container follows the suffix (.mp4, .mkv, .webm, .mov)."""
    width, height = size
    video_src = f"color=c={color}:s={width}x{height}:r={fps}" if source == "color" else \
        f"{source}=s={width}x{height}:r={fps}"
    args = ["-f", "lavfi", "-i", f"{video_src}:d={duration_s}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f={tone_hz}:d={duration_s}:sample_rate=44100"]
    webm = path.suffix == ".webm"
    args += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"] if webm else \
        ["-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-pix_fmt", pix_fmt]
    if audio:
        args += ["-af", f"volume={volume_db}dB", "-c:a", "libopus" if webm else "aac", "-shortest"]
    if faststart and path.suffix in (".mp4", ".mov"):
        args += ["-movflags", "+faststart"]
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([*args, str(path)])
    return path


def make_audio(path: Path, *, duration_s: float = 2.0, tone_hz: int = 440) -> Path:
    """An audio-only file (a "video" with no video stream)."""
    _run(["-f", "lavfi", "-i", f"sine=f={tone_hz}:d={duration_s}", "-c:a", "aac", str(path)])
    return path


def make_image(path: Path, *, size: tuple[int, int] = (64, 64), color: str = "red") -> Path:
    """A still image of one colour (PNG keeps the colour exact)."""
    _run(["-f", "lavfi", "-i", f"color=c={color}:s={size[0]}x{size[1]}", "-frames:v", "1", str(path)])
    return path


def make_truncated(source: Path, dest: Path, keep_fraction: float = 0.5) -> Path:
    """The first part of ``source``: for an MP4 written without faststart, the index is lost."""
    data = source.read_bytes()
    dest.write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return dest


def make_hls_disguised(path: Path, target: str = "/etc/passwd") -> Path:
    """An HLS playlist named like a video, pointing at a local file outside the media roots."""
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n")
    return path


def make_concat_disguised(path: Path, target: str = "/etc/passwd") -> Path:
    """An FFmpeg concat list named like a video, pointing at a local file outside the media roots."""
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return path


def make_keyframed_source(path: Path, *, duration_s: int, size: str, fps: int = 25, audio: bool = True) -> Path:
    """x264 with a keyframe every second and an AAC tone: a source a split transcode cuts at every second."""
    tone = ["-f", "lavfi", "-i", f"sine=f=330:d={duration_s}:sample_rate=48000"] if audio else []
    sound = ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(["-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={duration_s}", *tone, "-c:v", "libx264", "-preset",
          "ultrafast", "-g", str(fps), "-pix_fmt", "yuv420p", *sound, "-movflags", "+faststart", str(path)])
    return path


# ─── checks ───────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Probed:
    """What a test usually asserts about a media file."""

    format_name: str
    duration: float
    streams: list[dict[str, Any]]

    def stream(self, kind: str) -> dict[str, Any] | None:
        return next((s for s in self.streams if s.get("codec_type") == kind), None)

    @property
    def video(self) -> dict[str, Any]:
        video = self.stream("video")
        assert video is not None, "no video stream"
        return video

    @property
    def audio(self) -> dict[str, Any] | None:
        return self.stream("audio")

    @property
    def size(self) -> tuple[int, int]:
        return int(self.video["width"]), int(self.video["height"])

    @property
    def fps(self) -> float:
        return float(Fraction(self.video.get("avg_frame_rate") or self.video["r_frame_rate"]))

    @property
    def video_duration(self) -> float:
        value = self.video.get("duration")
        return float(value) if value not in (None, "N/A") else self.duration

    @property
    def frame_count(self) -> int:
        return int(self.video.get("nb_read_frames") or self.video.get("nb_frames") or 0)


def ffprobe(path: Path, *, count_frames: bool = False) -> Probed:
    cmd = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json"]
    if count_frames:
        cmd.append("-count_frames")
    done = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(done.stdout)
    fmt = data.get("format", {})
    return Probed(str(fmt.get("format_name", "")), float(fmt.get("duration") or 0), data.get("streams", []))


def integrated_loudness(path: Path) -> float:
    """Integrated loudness (LUFS) measured with FFmpeg's EBU R128 filter."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128",
                           "-f", "null", "-"], capture_output=True, text=True, timeout=120, check=True)
    summary = done.stderr.rsplit("Summary:", 1)[-1]
    match = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    assert match, f"no loudness summary in:\n{done.stderr[-1000:]}"
    return float(match.group(1))


def frame_rgb(path: Path, at_s: float, *, size: tuple[int, int] | None = None) -> tuple[int, int, bytes]:
    """One decoded frame as raw RGB24 bytes: (width, height, pixels)."""
    info = ffprobe(path)
    width, height = size or info.size
    seek = ["-ss", f"{at_s}"] if at_s > 0 else []  # seeking a still image yields no frame at all
    done = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *seek, "-i", str(path),
                           "-frames:v", "1", "-vf", f"scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                           "-"], capture_output=True, timeout=60, check=True)
    assert len(done.stdout) == width * height * 3, f"expected one {width}x{height} frame at {at_s} s"
    return width, height, done.stdout


def region_mean(frame: tuple[int, int, bytes], box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """Mean R, G, B of the pixels in ``box`` = (x, y, w, h) of a frame from ``frame_rgb``."""
    width, _height, pixels = frame
    x0, y0, w, h = box
    sums = [0, 0, 0]
    for y in range(y0, y0 + h):
        row = pixels[(y * width + x0) * 3:(y * width + x0 + w) * 3]
        for channel in range(3):
            sums[channel] += sum(row[channel::3])
    count = w * h
    return sums[0] / count, sums[1] / count, sums[2] / count


def region_bytes(frame: tuple[int, int, bytes], box: tuple[int, int, int, int]) -> bytes:
    """The raw RGB bytes of ``box`` = (x, y, w, h), row by row (to compare two frames' regions)."""
    width, _height, pixels = frame
    x0, y0, w, h = box
    return b"".join(pixels[(y * width + x0) * 3:(y * width + x0 + w) * 3] for y in range(y0, y0 + h))


def decoded_frames(path: Path) -> int:
    """Decoded frame count of the first video stream (ffprobe decodes every frame)."""
    done = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                           "stream=nb_read_frames", "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                          check=True, timeout=120)
    return int(done.stdout.strip().split(",")[0])


def video_span(path: Path, fps: float = 25) -> float:
    """First to last video packet plus one frame: the video's duration as the frames give it."""
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True, timeout=60)
    times = sorted(float(t) for t in done.stdout.split())
    return times[-1] - times[0] + 1 / fps


def mediainfo(path: Path, field: str) -> str:
    """One field of the video track as Debian's mediainfo (a parser independent of FFmpeg) reads it."""
    done = subprocess.run(["mediainfo", f"--Inform=Video;%{field}%", str(path)], capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


def assert_like_single_encode(output: Path, source: Path, fps: float = 25) -> None:
    """Same frame count and duration (within a frame) as the source, valid for mediainfo, mkvinfo and a decode."""
    frames = decoded_frames(source)
    assert decoded_frames(output) == frames
    assert abs(video_span(output, fps) - video_span(source, fps)) <= 1 / fps + 1e-6
    assert int(mediainfo(output, "FrameCount")) == frames  # an independent parser agrees
    if output.suffix in (".mkv", ".webm"):
        done = subprocess.run(["mkvinfo", str(output)], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0 and "Segment" in done.stdout, done.stdout[-500:] + done.stderr[-500:]
    subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(output), "-f", "null", "-"], check=True,
                   timeout=120)  # decodes end to end without an error
