"""Alembic migrations from empty to head and back, on SQLite and PostgreSQL, and no drift between the schema they
build and the models (tables, columns, types, nullability, indexes, unique constraints, foreign keys)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import geminivideo.db.models  # noqa: F401  (every model on Base.metadata)
from geminivideo.db.base import Base
from geminivideo.db.migrate import downgrade, upgrade
from geminivideo.db.session import make_engine
from tests.support.env import create_postgres_database, drop_postgres_database

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


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


def _drift(diff: list[object]) -> set[tuple[str, ...]]:
    """Alembic's autogenerate differences as (kind, table, name) triples, whatever their nesting."""
    found: set[tuple[str, ...]] = set()
    for entry in diff:
        for op in entry if isinstance(entry, list) else [entry]:
            assert isinstance(op, tuple)
            kind = str(op[0])
            if kind.startswith("modify_"):  # (kind, schema, table, column, ...)
                found.add((kind, str(op[2]), str(op[3])))
            else:  # (kind, object): a table, column, index, unique or foreign key constraint
                obj = op[-1]
                table = getattr(getattr(obj, "table", None), "name", None) or getattr(obj, "name", "?")
                found.add((kind, str(table), str(getattr(obj, "name", None) or obj)))
    return found


def test_the_migrated_schema_matches_the_models(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            drift = _drift(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
    assert not drift, f"the migrations and the models disagree: {sorted(drift)}"


def _seed_ad_with_history(engine: Engine, tenant: str | None) -> None:
    """One ad (of ``tenant``) with a day of metrics, written at revision 0005 (ads.tenant_id still NULL-able)."""
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'T1', :now)"),
                           {"now": NOW})
        connection.execute(text("INSERT INTO ads (id, tenant_id, campaign_id, name, status, daily_budget, launched_at, "
                                "created_at) VALUES ('ad1', :tenant, 'c1', 'Ad 1', 'active', 50, :now, :now)"),
                           {"tenant": tenant, "now": NOW})
        connection.execute(text("INSERT INTO ad_daily_metrics (ad_id, day, impressions, clicks, spend, conversions) "
                                "VALUES ('ad1', :day, 1000, 20, 12.5, 2)"), {"day": NOW.date()})


def _history(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT a.id, a.tenant_id, m.impressions FROM ads a JOIN ad_daily_metrics m ON m.ad_id = a.id"))]


def test_requiring_the_ads_tenant_keeps_every_row_that_references_ads(empty_database: str) -> None:
    """0006 rebuilds ``ads`` on SQLite: with foreign keys on, dropping the old table would cascade into the
    metrics; the migration environment turns them off around the rebuild and checks them before committing."""
    upgrade(empty_database, "0005_api_keys")
    engine = make_engine(empty_database)
    try:
        _seed_ad_with_history(engine, "t1")
        upgrade(empty_database)
        assert _history(engine) == [("ad1", "t1", 1000)]
        tenant = next(c for c in inspect(engine).get_columns("ads") if c["name"] == "tenant_id")
        assert tenant["nullable"] is False
        downgrade(empty_database, "0005_api_keys")
        assert _history(engine) == [("ad1", "t1", 1000)]
    finally:
        engine.dispose()


def test_an_ad_without_a_tenant_stops_the_migration_and_loses_nothing(empty_database: str) -> None:
    upgrade(empty_database, "0005_api_keys")
    engine = make_engine(empty_database)
    try:
        _seed_ad_with_history(engine, None)
        with pytest.raises(RuntimeError, match="1 rows of ads have no tenant_id"):
            upgrade(empty_database)
        assert _history(engine) == [("ad1", None, 1000)]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005_api_keys"
    finally:
        engine.dispose()
