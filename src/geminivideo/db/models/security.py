"""Security tables: API keys (named, hashed at rest, with scopes and an optional tenant) and the
idempotency records of job submission."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from geminivideo.db.base import Base, UTCDateTime, utcnow

__all__ = ["ApiKey"]


class ApiKey(Base):
    """One API key. Only the SHA-256 of the token is stored: the token itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the token's bytes
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to recognise it in lists
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    tenant_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
