"""What differs between the two databases the code runs on (PostgreSQL in production, SQLite on one host).

Modules ask here instead of comparing dialect names themselves, so the places that take a
PostgreSQL-only path (COPY, advisory locks, ``SKIP LOCKED``, array parameters) are found by one name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, TextClause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

DialectInsert = postgresql.Insert | sqlite.Insert


def is_postgresql(session: Session) -> bool:
    """Whether ``session`` is bound to PostgreSQL (otherwise it is SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session, table: Any) -> DialectInsert:
    """An ``INSERT`` of the session's dialect, which has ``on_conflict_do_nothing``/``_do_update`` (both have them
    with the same arguments, the generic ``sqlalchemy.insert`` has neither)."""
    return (postgresql.insert if is_postgresql(session) else sqlite.insert)(table)


def insert_ignoring_conflicts(
    session: Session,
    table: Any,
    index_elements: list[str],
    index_where: ColumnElement[bool] | TextClause | None = None,
) -> DialectInsert:
    """``INSERT … ON CONFLICT (index_elements) [WHERE index_where] DO NOTHING`` for the session's database."""
    return dialect_insert(session, table).on_conflict_do_nothing(index_elements=index_elements,
                                                                 index_where=index_where)
