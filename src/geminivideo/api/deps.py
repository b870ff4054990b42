"""Shared request dependencies (API key check)."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, status

from geminivideo.config import get_settings


def require_api_key(x_api_key: str | None = Header(default=None)) -> None:
    """When API_KEYS is set, every job and ML endpoint needs one of them in ``X-API-Key``."""
    keys = get_settings().api_keys
    if not keys:
        return
    if x_api_key is None or not any(hmac.compare_digest(x_api_key, key) for key in keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or invalid X-API-Key", {"WWW-Authenticate": "ApiKey"}
        )
