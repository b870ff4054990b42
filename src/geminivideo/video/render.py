"""Render an ad from scenes with FFmpeg.

Not implemented yet: owned by the video issue."""

from __future__ import annotations

from typing import Any


def render_video(job: Any, on_progress: Any) -> Any:
    raise NotImplementedError("render_video is not implemented yet")

