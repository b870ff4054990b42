"""webhooks tables (see migrations/versions)."""

from __future__ import annotations

__all__: list[str] = []
