"""API keys: named, stored as the SHA-256 of a high-entropy token, with scopes and an optional tenant.

A token is ``gv_`` followed by 32 random bytes (URL-safe base64); it is shown once, at creation, and only
its hash is kept, so a stolen database does not yield working keys. A hash of a 256-bit random token
needs no salt or slow KDF: there is nothing to brute-force. Keys from ``API_KEYS`` (``token`` or
``name=token``, comma separated) are the bootstrap path: admin keys that live only in the environment.
Every comparison is on bytes with ``hmac.compare_digest``, so a header with non-ASCII characters simply
matches nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from geminivideo.db.base import utcnow
from geminivideo.db.models import ApiKey
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload

TOKEN_PREFIX = "gv_"
MAX_KEY_BYTES = 256  # longer headers are not keys we issued; refuse them before hashing
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


class Scope(StrEnum):
    """What a key may do (DESIGN §9). ``admin`` implies every other scope and sees every tenant."""

    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    APPROVALS_READ = "approvals:read"
    APPROVALS_DECIDE = "approvals:decide"
    WEBHOOKS_READ = "webhooks:read"
    METRICS_READ = "metrics:read"
    ADS_READ = "ads:read"
    ADS_WRITE = "ads:write"
    ADMIN = "admin"


_SCOPE_VALUES = frozenset(s.value for s in Scope)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as ``decided_by``), its scopes and its tenant (None: all)."""

    name: str
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    tenant_id: str | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def sees_tenant(self, tenant_id: str | None) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as ``keys list`` shows it (never the token)."""

    name: str
    prefix: str
    scopes: list[str]
    tenant_id: str | None
    created_at: datetime
    revoked_at: datetime | None


def hash_token(token: bytes) -> str:
    return hashlib.sha256(token).hexdigest()


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scope names to ``Scope`` members; an unknown name is an error that lists the known ones."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value.strip()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidPayload(f"unknown scope {value!r}: use one of {known}") from None
    if not scopes:
        raise InvalidPayload("a key needs at least one scope (e.g. jobs:read)")
    return frozenset(scopes)


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= 128 or not set(name) <= _NAME_CHARS:
        raise InvalidPayload(f"key name {name!r}: use 1-128 letters, digits, '.', '_', '@' or '-'")
    return name


def create_key(name: str, scopes: Iterable[str], tenant_id: str | None = None) -> str:
    """Store a new key and return its token (the only time it exists outside the caller's hands)."""
    granted = parse_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=_check_name(name), key_hash=hash_token(token.encode()), prefix=token[:10],
                 scopes=sorted(s.value for s in granted), tenant_id=tenant_id or None)
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        raise InvalidPayload(f"a key named {name!r} already exists (revoke it or choose another name)") from None
    return token


def list_keys(*, include_revoked: bool = False) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.name)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    with session_scope() as session:
        return [KeyInfo(r.name, r.prefix, list(r.scopes), r.tenant_id, r.created_at, r.revoked_at)
                for r in session.scalars(query)]


def revoke_key(name: str) -> bool:
    """Mark the key revoked (kept for the audit trail); False when no active key has that name."""
    with session_scope() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))).first()
        if row is None:
            return False
        row.revoked_at = utcnow()
        return True


def active_key_count() -> int:
    with session_scope() as session:
        return len(list(session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)))))


def _as_bytes(raw: str | bytes) -> bytes:
    # Header values arrive latin-1 decoded; anything else a caller passes is UTF-8. Either way: bytes.
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def _bootstrap(raw: bytes, entries: Sequence[str]) -> Principal | None:
    """Match against every ``API_KEYS`` entry (no early exit, so timing does not say which one matched)."""
    found: Principal | None = None
    for index, entry in enumerate(entries, start=1):
        name, sep, token = entry.partition("=")
        if not sep:
            name, token = f"api-keys-{index}", entry
        if hmac.compare_digest(raw, token.encode()):
            found = Principal(name=name, scopes=frozenset({Scope.ADMIN}))
    return found


def authenticate_token(raw: str | bytes | None, bootstrap: Sequence[str] = ()) -> Principal | None:
    """The principal of ``raw`` (an ``X-API-Key`` value), or None when it is not an active key."""
    if raw is None:
        return None
    token = _as_bytes(raw)
    if not token or len(token) > MAX_KEY_BYTES:
        return None
    principal = _bootstrap(token, bootstrap)
    if principal is not None:
        return principal
    digest = hash_token(token)
    with session_scope() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))).first()
        if row is None or not hmac.compare_digest(row.key_hash.encode(), digest.encode()):
            return None
        return Principal(name=row.name, scopes=frozenset(Scope(s) for s in row.scopes if s in _SCOPE_VALUES),
                         tenant_id=row.tenant_id)
