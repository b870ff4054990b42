"""Resource snapshots.

Not implemented yet: owned by the housekeeping issue."""

from __future__ import annotations

from typing import Any


def collect_and_publish() -> dict[str, Any]:
    raise NotImplementedError("collect_and_publish is not implemented yet")

