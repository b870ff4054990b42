"""Disk cleanup of the media dirs.

Not implemented yet: owned by the housekeeping issue."""

from __future__ import annotations

from typing import Any


def cleanup(job: Any) -> Any:
    raise NotImplementedError("cleanup is not implemented yet")

