"""Whisper captions.

Not implemented yet: owned by the caption issue."""

from __future__ import annotations

from typing import Any


def caption_video(job: Any, on_progress: Any) -> Any:
    raise NotImplementedError("caption_video is not implemented yet")

