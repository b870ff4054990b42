"""Winner index.

Not implemented yet: owned by the winners issue."""

from __future__ import annotations

from typing import Any


def index_all_winners(on_progress: Any) -> Any:
    raise NotImplementedError("index_all_winners is not implemented yet")


def index_winner(job: Any) -> dict[str, Any]:
    raise NotImplementedError("index_winner is not implemented yet")

