"""Preview frames, and optionally a sprite sheet with a WebVTT thumbnail track for player scrubbing.

Frames are taken at the middle of ``num_frames`` equal slices of the video, each by input seeking
(``-ss`` before ``-i``): FFmpeg jumps to the nearest keyframe instead of decoding the whole file (3 s
instead of 31 s for 5 frames of a 280 s file, field notes). Several seeks share one FFmpeg process.
Thumbnails keep the display aspect ratio (a 9:16 clip gives 9:16 thumbnails).

Everything is written into a hidden folder beside ``PREVIEW_DIR/<id>`` and renamed at the end, so a
failed or cancelled preview leaves nothing behind.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geminivideo.config import get_settings
from geminivideo.contracts import PreviewJob, PreviewResult, utcnow
from geminivideo.errors import ProcessingFailed, UnsupportedOption
from geminivideo.progress import ProgressCallback, no_progress
from geminivideo.video.ffmpeg import MediaInfo, input_args, probe, probe_json
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.media import ensure_output_dir
from geminivideo.video.render import filtergraph as fg
from geminivideo.video.workspace import Deadline, atomic_dir, checked_media, run_ffmpeg_within

SEEKS_PER_RUN = 8  # inputs one FFmpeg opens at once: few enough to keep memory small
SPRITE_LIMITS = {"jpg": 65_535, "webp": 16_383}  # largest side each image format can hold
_CODEC_ARGS = {"jpg": ["-c:v", "mjpeg", "-q:v", "3"], "webp": ["-c:v", "libwebp", "-quality", "80"]}


@dataclass(frozen=True)
class Grid:
    """A sprite layout: ``columns`` × ``rows`` tiles of ``width`` × ``height``."""

    columns: int
    rows: int
    width: int
    height: int

    def cell(self, index: int) -> tuple[int, int, int, int]:
        """x, y, w, h of tile ``index`` (row-major, as the tile filter fills it)."""
        row, column = divmod(index, self.columns)
        return column * self.width, row * self.height, self.width, self.height


def frame_times(duration_s: float, count: int) -> list[float]:
    """The middle of each of ``count`` equal slices: never the black first frame, never past the end."""
    return [duration_s * (i + 0.5) / count for i in range(count)]


def thumbnail_height(width: int, info: MediaInfo) -> int:
    """The even height that keeps the display aspect ratio at ``width`` (expected, for the sprite check)."""
    return max(2, int(width / info.aspect / 2) * 2) if info.aspect else width


def thumbnail_filter(width: int) -> str:
    # dar is the display aspect ratio (sample aspect included), so anamorphic video is not squashed.
    return ",".join([fg.filt("scale", w=width, h="trunc(ow/dar/2)*2"), "setsar=1"])


def grid_for(count: int, width: int, height: int) -> Grid:
    columns = math.ceil(math.sqrt(count))
    return Grid(columns, math.ceil(count / columns), width, height)


def vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def thumbnails_vtt(sprite_name: str, grid: Grid, duration_s: float, count: int) -> str:
    """A WebVTT track whose cues point at sprite tiles (``sprite.jpg#xywh=x,y,w,h``), one per slice."""
    lines = ["WEBVTT", ""]
    for index in range(count):
        start, end = duration_s * index / count, duration_s * (index + 1) / count
        x, y, w, h = grid.cell(index)
        lines += [f"{vtt_time(start)} --> {vtt_time(end)}", f"{sprite_name}#xywh={x},{y},{w},{h}", ""]
    return "\n".join(lines)


def video_duration(info: MediaInfo) -> float:
    """The video stream's own length when known (audio may run longer than the picture)."""
    streams = probe_json(info.path).get("streams", [])
    video: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "video"), {})
    try:
        own = float(video.get("duration", "nan"))
    except ValueError:
        own = math.nan
    return own if math.isfinite(own) and 0 < own <= info.duration else info.duration


def frame_arguments(source: Path, batch: Sequence[tuple[float, Path]], width: int, fmt: str) -> list[str]:
    """One FFmpeg run: one seeking input and one single-frame output per requested time."""
    args: list[str] = []
    for at_s, _target in batch:
        args += ["-ss", fg.num(at_s), *input_args(source)]
    for index, (_at_s, target) in enumerate(batch):
        args += ["-map", f"{index}:v:0", "-vf", thumbnail_filter(width), "-frames:v", "1", *_CODEC_ARGS[fmt],
                 "-update", "1", "-f", "image2", str(target)]
    return args


def extract_frames(source: Path, times: Sequence[float], folder: Path, job: PreviewJob, deadline: Deadline,
                   on_progress: ProgressCallback) -> list[Path]:
    targets = [folder / f"frame_{i + 1:03d}.{job.format}" for i in range(len(times))]
    pairs = list(zip(times, targets, strict=True))
    for start in range(0, len(pairs), SEEKS_PER_RUN):
        batch = pairs[start:start + SEEKS_PER_RUN]
        run_ffmpeg_within(deadline, frame_arguments(source, batch, job.width, job.format), what="preview frames")
        on_progress(85 * (start + len(batch)) / len(pairs), f"{start + len(batch)} of {len(pairs)} frames")
    missing = [t.name for t in targets if not t.exists() or t.stat().st_size == 0]
    if missing:
        raise ProcessingFailed(f"preview: no frame could be decoded for {', '.join(missing)} (truncated video?)")
    return targets


def check_sprite_size(grid: Grid, fmt: str) -> None:
    limit = SPRITE_LIMITS[fmt]
    width, height = grid.columns * grid.width, grid.rows * grid.height
    if max(width, height) > limit:
        raise UnsupportedOption(f"sprite: {grid.columns}x{grid.rows} tiles of {grid.width}x{grid.height} make a "
                                f"{width}x{height} image, above the {fmt} limit of {limit} px; lower num_frames "
                                "or width")


def build_sprite(grid: Grid, folder: Path, fmt: str, deadline: Deadline) -> Path:
    """Tile the frames row by row into one image (empty cells stay black)."""
    target = folder / f"sprite.{fmt}"
    # The image2 pattern treats % specially, so a literal % in the folder name is doubled.
    pattern = str(folder).replace("%", "%%") + f"/frame_%03d.{fmt}"
    tile = fg.filt("tile", f"{grid.columns}x{grid.rows}")
    run_ffmpeg_within(deadline, ["-framerate", "1", *input_args(pattern), "-vf", tile, "-frames:v", "1",
                                 *_CODEC_ARGS[fmt], "-update", "1", "-f", "image2", str(target)], what="preview sprite")
    if not target.exists():
        raise ProcessingFailed("preview: the sprite sheet was not written")
    return target


def measured_size(path: Path) -> tuple[int, int]:
    info = probe(path, require_video=False)
    return info.width, info.height


def generate_preview(job: PreviewJob, on_progress: ProgressCallback = no_progress) -> PreviewResult:
    """Write ``num_frames`` thumbnails (and optionally a sprite + VTT) to ``PREVIEW_DIR/<id>/``."""
    deadline = Deadline(get_settings().preview_timeout, "PREVIEW_TIMEOUT")
    info = checked_media(job.video_path, "video_path")
    duration = video_duration(info)
    times = frame_times(duration, job.num_frames)
    final = ensure_output_dir(get_settings().preview_dir) / uuid.uuid4().hex
    expected = Grid(1, 1, job.width, thumbnail_height(job.width, info))
    if job.sprite:
        check_sprite_size(grid_for(job.num_frames, expected.width, expected.height), job.format)
    with in_use(info.path), atomic_dir(final) as folder:
        frames = extract_frames(info.path, times, folder, job, deadline, on_progress)
        width, height = measured_size(frames[0])
        sprite = vtt = None
        if job.sprite:
            grid = grid_for(len(frames), width, height)
            sprite = build_sprite(grid, folder, job.format, deadline)
            vtt = folder / "thumbnails.vtt"
            vtt.write_text(thumbnails_vtt(sprite.name, grid, duration, len(frames)), encoding="utf-8")
        on_progress(98, "preview written")
    return PreviewResult(
        preview_dir=str(final), preview_paths=[str(final / f.name) for f in frames], num_frames=len(frames),
        video_duration=round(duration, 3), sprite_path=str(final / sprite.name) if sprite else None,
        vtt_path=str(final / vtt.name) if vtt else None, frame_times=[round(t, 3) for t in times],
        frame_width=width, frame_height=height, timestamp=utcnow(),
    )
