"""Creative fatigue monitor.

Not implemented yet: owned by the decisions issue."""

from __future__ import annotations

from typing import Any


def scan_all_ads(job: Any, on_progress: Any) -> Any:
    raise NotImplementedError("scan_all_ads is not implemented yet")

