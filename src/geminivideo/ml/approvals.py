"""Approval queue execution.

Not implemented yet: owned by the decisions issue."""

from __future__ import annotations

from typing import Any


def execute_approved_changes(limit: int = 100) -> dict[str, Any]:
    raise NotImplementedError("execute_approved_changes is not implemented yet")

