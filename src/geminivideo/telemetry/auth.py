"""Who may read metrics: the holder of METRICS_TOKEN (or METRICS_TOKEN_FILE), else loopback callers only."""

from __future__ import annotations

import hmac
import ipaddress

from geminivideo.config import Settings


def metrics_token(settings: Settings) -> str | None:
    """METRICS_TOKEN (config.py reads METRICS_TOKEN_FILE into it); None when unset or empty."""
    if settings.metrics_token is not None and settings.metrics_token.get_secret_value():
        return settings.metrics_token.get_secret_value()
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def may_read_metrics(token: str | None, authorization: str | None, client_host: str | None) -> bool:
    """With a token configured only a matching ``Authorization: Bearer`` header; without one, loopback only."""
    if token is None:
        return is_loopback(client_host)
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
