"""Preview frames and sprite sheets.

Not implemented yet: owned by the video issue."""

from __future__ import annotations

from typing import Any


def generate_preview(job: Any, on_progress: Any) -> Any:
    raise NotImplementedError("generate_preview is not implemented yet")

