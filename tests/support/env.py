"""The isolated environment one pytest session runs in: private Redis, temp media dirs, databases."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from geminivideo.config import get_settings
from geminivideo.db.migrate import upgrade
from geminivideo.db.session import dispose_engine
from geminivideo.redis_client import reset_redis
from geminivideo.security.keys import create_key
from tests.support import leaks

PG_ADMIN_DSN = os.environ.get("GV_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL_TEMPLATE = os.environ.get("GV_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")


@dataclass
class TestEnv:
    root: Path
    redis_url: str
    sqlite_url: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def temp_dir(self) -> Path:
        return Path(self.values["TEMP_DIR"])

    @property
    def render_dir(self) -> Path:
        return Path(self.values["RENDER_DIR"])

    @property
    def preview_dir(self) -> Path:
        return Path(self.values["PREVIEW_DIR"])

    @property
    def media_dir(self) -> Path:
        """Where tests put their generated inputs (inside MEDIA_ROOTS)."""
        return Path(self.values["GV_TEST_MEDIA_DIR"])

    def process_env(self, **overrides: str) -> dict[str, str]:
        """Environment for a child process (worker, API, beat): the session's values plus overrides."""
        leaks.register_env(overrides)
        env = {**os.environ, **self.values, **overrides}
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


def build_values(root: Path, redis_url: str, sqlite_url: str) -> dict[str, str]:
    media = root / "media"
    dirs = {"TEMP_DIR": root / "tmp", "RENDER_DIR": root / "renders", "PREVIEW_DIR": root / "previews"}
    for path in [*dirs.values(), media]:
        path.mkdir(parents=True, exist_ok=True)
    return {
        **{key: str(path) for key, path in dirs.items()},
        "MEDIA_ROOTS": ":".join(str(p) for p in [*dirs.values(), media]),
        "GV_TEST_MEDIA_DIR": str(media),
        "REDIS_URL": redis_url,
        "DATABASE_URL": sqlite_url,
        "WINNER_INDEX_PATH": str(root / "winner_index"),
        "WHISPER_CACHE_DIR": str(Path.cwd() / "var" / "whisper-models"),
        "HUBSPOT_CLIENT_SECRET": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "FLOWER_PASSWORD": "test-" + secrets.token_hex(8),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "UNACKED_RESTORE_INTERVAL_S": "2",
        # Tests talk to APIs they start on loopback; the security tests turn authentication on themselves.
        "API_AUTH": "off",
        # Every test shares the "local" key's buckets: limits far above what the suite sends (one test lowers them).
        "RATE_LIMIT_JOBS_PER_MINUTE": "60000", "RATE_LIMIT_JOBS_BURST": "10000",
        "RATE_LIMIT_ML_PER_MINUTE": "60000", "RATE_LIMIT_ML_BURST": "10000",
    }


@contextmanager
def applied(values: Mapping[str, str]) -> Iterator[None]:
    """Put ``values`` into os.environ and drop every per-process cache that read the old ones."""
    leaks.register_env(values)
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    refresh_caches()
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        refresh_caches()


def create_test_key(name: str, scopes: Iterable[str], tenant_id: str | None = None) -> str:
    """``security.keys.create_key`` for tests: the token is also a secret the session's leak scan looks for."""
    token = create_key(name, scopes, tenant_id)
    leaks.register_secret("API key (create_test_key)", token)
    return token


def refresh_caches() -> None:
    get_settings.cache_clear()
    reset_redis()
    dispose_engine()


def create_postgres_database(*, migrate: bool = True) -> tuple[str, str]:
    """Create a fresh database for this session, migrate it, return (name, SQLAlchemy URL)."""
    name = f"gv_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_URL_TEMPLATE.format(db=name)
    if migrate:
        upgrade(url)
    return name, url


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
