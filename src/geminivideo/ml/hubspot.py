"""HubSpot deal-stage webhook processing.

Not implemented yet: owned by the webhook issue."""

from __future__ import annotations

from typing import Any


def process_event(event: Any) -> Any:
    raise NotImplementedError("process_event is not implemented yet")


def sweep_unprocessed_events() -> dict[str, Any]:
    raise NotImplementedError("sweep_unprocessed_events is not implemented yet")

