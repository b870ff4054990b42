"""Who is signed in: one function turns an API key into an identity.

Today the API's keys are the anonymous ``API_KEYS`` list checked by ``api.deps.require_api_key``; the key
store of the security work will give keys names, scopes and a tenant. Everything in the console asks only
``identify(key)``, so switching to the key store changes this one function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fastapi import HTTPException

from geminivideo.api.deps import require_api_key
from geminivideo.config import get_settings

MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Identity:
    """The signed-in principal; ``name`` is what decisions record as ``decided_by``."""

    name: str
    scopes: tuple[str, ...] = field(default=("admin",))
    tenant_id: str | None = None

    def can(self, scope: str) -> bool:
        """Whether this identity holds ``scope`` (``admin`` holds every scope)."""
        return "admin" in self.scopes or scope in self.scopes

    def sees(self, tenant_id: str) -> bool:
        """Whether this identity may see and decide ``tenant_id``'s objects (a key without a tenant sees all)."""
        return self.tenant_id is None or self.tenant_id == tenant_id


def key_name(key: str) -> str:
    """A stable, non-secret name for an unnamed key: a prefix of its SHA-256 (the key itself is never shown)."""
    return "api-key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def identify(key: str) -> Identity | None:
    """The identity of ``key``, or None when the API would refuse it.

    The console never signs anyone in while no key is configured, even though the JSON API is then open:
    a person who approves budget changes must be someone.
    """
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not get_settings().api_keys:
        return None
    try:
        require_api_key(x_api_key=key)
    except HTTPException:
        return None
    return Identity(name=key_name(key))
