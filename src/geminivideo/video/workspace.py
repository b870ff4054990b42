"""What render, preview and transcode share around FFmpeg: checked inputs, scratch space, deadlines.

- ``checked_media`` resolves a path under the media roots and probes it, with every error naming the
  payload field (``scenes[2].video_path: … has no video stream``).
- ``scratch_dir`` is a private folder in TEMP_DIR, held in the in-use registry while the task runs and
  removed afterwards, on failure and on cancellation too.
- ``Deadline`` turns the task's time limit into the ``timeout_s`` of each FFmpeg run, so FFmpeg is
  killed no later than the soft limit even if Celery's signal is late.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from geminivideo.config import get_settings
from geminivideo.errors import MediaUnreadable, ProcessingFailed
from geminivideo.leases import fencing
from geminivideo.video.ffmpeg import PARTIAL_MARKER, MediaInfo, probe, run_ffmpeg
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.media import resolve_input

MIN_TIMEOUT_S = 1.0


def checked_media(path: str, field: str, *, require_video: bool = True) -> MediaInfo:
    """Resolve ``path`` inside MEDIA_ROOTS and probe it; errors name ``field``."""
    resolved = resolve_input(path, field=field)
    try:
        info = probe(resolved, require_video=require_video)
    except MediaUnreadable as exc:
        raise MediaUnreadable(f"{field}: {exc}") from None
    if not info.has_video:
        raise MediaUnreadable(f"{field}: {path} has no picture (not an image or video)")
    return info


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A fresh folder in TEMP_DIR for one task's temporary files, removed however the task ends."""
    root = get_settings().temp_dir
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{kind}-{uuid.uuid4().hex}"
    path.mkdir()
    try:
        with in_use(path):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a hidden folder beside ``final``; rename it to ``final`` on success, delete it otherwise."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}{PARTIAL_MARKER}{uuid.uuid4().hex[:12]}")
    temp.mkdir()
    try:
        with in_use(temp):
            yield temp
        fencing.check_current()  # only the attempt that holds the task may put the folder in place
        os.replace(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


class Deadline:
    """Seconds left of a task's time limit, measured from when the task began its work."""

    def __init__(self, limit_s: float, setting: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.limit_s = limit_s
        self.setting = setting
        self._ends_at = clock() + limit_s

    def remaining_s(self) -> float:
        left = self._ends_at - self._clock()
        if left <= 0:
            raise ProcessingFailed(f"time limit {self.setting}={self.limit_s:.0f} s reached before FFmpeg could run")
        return max(MIN_TIMEOUT_S, left)

    @property
    def expired(self) -> bool:
        return self._clock() >= self._ends_at


def run_ffmpeg_within(deadline: Deadline, args: list[str], *, what: str, **options: Any) -> list[str]:
    """``run_ffmpeg`` killed when the task's time limit is reached, saying which limit it was."""
    try:
        return run_ffmpeg(args, timeout_s=deadline.remaining_s(), what=what, **options)
    except ProcessingFailed:
        if deadline.expired:
            raise ProcessingFailed(f"{what} was stopped by its time limit {deadline.setting}="
                                   f"{deadline.limit_s:.0f} s; FFmpeg was killed and nothing was kept") from None
        raise


def file_size(path: Path) -> int:
    return path.stat().st_size
