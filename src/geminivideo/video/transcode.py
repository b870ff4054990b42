"""Transcode to H.264/H.265/VP9/AV1.

Not implemented yet: owned by the video issue."""

from __future__ import annotations

from typing import Any


def transcode(job: Any, on_progress: Any) -> Any:
    raise NotImplementedError("transcode is not implemented yet")

