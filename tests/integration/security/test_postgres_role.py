"""The compose PostgreSQL roles for real: ``deploy/postgres/app-role.sql`` run by psql (as the image's init
hook does) gives the application role rows, not the schema. Migrations run as the owner; afterwards the
application role reads and writes every table the owner created, and cannot create, alter or drop any."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from geminivideo.db.migrate import upgrade
from tests.support.env import PG_ADMIN_DSN

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Roles:
    database: str
    owner_dsn: str
    app_dsn: str
    owner_url: str


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    suffix = secrets.token_hex(4)
    database, owner, app = f"gv_roles_{suffix}", f"gv_owner_{suffix}", f"gv_app_{suffix}"
    owner_pw, app_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    _admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(owner_pw)))
    _admin(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))
    admin = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_DSN)
    host, port = admin.get("host", "127.0.0.1"), admin.get("port", "5432")
    try:
        # As the image's init hook does: psql with the password in the environment, not in argv.
        subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-h", str(host), "-p", str(port), "-U", str(admin["user"]),
                        "-d", database, "-v", f"app_user={app}", "-v", f"owner={owner}", "-v", f"dbname={database}",
                        "-f", str(ROOT / "deploy/postgres/app-role.sql")],
                       env={**os.environ, "APP_PASSWORD": app_pw}, check=True, capture_output=True, timeout=60)
        owner_url = f"postgresql+psycopg://{owner}:{owner_pw}@{host}:{port}/{database}"
        upgrade(owner_url)  # migrations as the owner, after the app role exists (default privileges apply)
        yield Roles(database, f"host={host} port={port} dbname={database} user={owner} password={owner_pw}",
                    f"host={host} port={port} dbname={database} user={app} password={app_pw}", owner_url)
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in (app, owner):
            _admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_application_role_writes_rows_of_every_migrated_table(roles: Roles) -> None:
    with psycopg.connect(roles.app_dsn, connect_timeout=10) as conn:
        conn.execute("INSERT INTO tenants (id, name, created_at) VALUES ('role-test', 'x', now())")
        conn.execute("INSERT INTO api_keys (name, key_hash, prefix, scopes, created_at) "
                     "VALUES ('k', repeat('a', 64), 'gv_', '[]', now())")  # a serial id: sequence usage works
        conn.execute("UPDATE tenants SET name = 'y' WHERE id = 'role-test'")
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (1,)
        conn.execute("DELETE FROM api_keys")


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE intruder (id int)",
    "DROP TABLE api_keys",
    "ALTER TABLE api_keys ADD COLUMN stolen text",
    "TRUNCATE webhook_events",
])
def test_the_application_role_cannot_change_the_schema(roles: Roles, ddl: str) -> None:
    with psycopg.connect(roles.app_dsn, connect_timeout=10) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(ddl)
