"""Who is signed in: one function turns an API key into an identity.

The console signs in with the same keys as the JSON API (``geminivideo keys create`` or the bootstrap
``API_KEYS``), through the API's own ``auth.authenticate``: a key's name, scopes and tenant become the
session's identity, and its name is what a decision records. Everything in the console asks only
``identify(key)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geminivideo.api.auth import authenticate

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


def identify(key: str) -> Identity | None:
    """The identity of ``key``, or None when the API would refuse it (blocking: it may read the key table).

    ``API_AUTH=off`` opens the JSON API to loopback callers but signs nobody in here: a person who approves
    budget changes must be someone with a key.
    """
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    principal = authenticate(key)
    if principal is None:
        return None
    return Identity(name=principal.name, scopes=tuple(sorted(str(s) for s in principal.scopes)),
                    tenant_id=principal.tenant_id)
