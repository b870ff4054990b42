"""Shared request dependencies. Authentication lives in ``geminivideo.api.auth``; ``require_api_key`` stays
as the name for "any valid key, no particular scope" for code written before scopes existed."""

from __future__ import annotations

from geminivideo.api.auth import current_principal

require_api_key = current_principal

__all__ = ["require_api_key"]
