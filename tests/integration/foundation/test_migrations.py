"""Alembic migrations from empty to head and back, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from geminivideo.db.base import Base
from geminivideo.db.migrate import downgrade, upgrade
from geminivideo.db.session import make_engine
from tests.support.env import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    name, url = create_postgres_database(migrate=False)
    yield url
    drop_postgres_database(name)


def test_upgrade_head_creates_every_model_table_and_downgrade_removes_them(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        for table in Base.metadata.sorted_tables:
            columns = {c["name"] for c in inspect(engine).get_columns(table.name)}
            assert set(table.columns.keys()) <= columns, f"{table.name} lacks columns in its migration"
        downgrade(empty_database)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(empty_database)
    finally:
        engine.dispose()
