"""One engine per process (re-created after fork), and a transactional session scope."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from geminivideo.config import get_settings
from geminivideo.telemetry.tracing import instrument_engine

_lock = threading.Lock()
_engine: Engine | None = None
_engine_key: tuple[int, str] | None = None
_sessionmaker: sessionmaker[Session] | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800)


def get_engine() -> Engine:
    global _engine, _engine_key, _sessionmaker
    url = get_settings().database_url
    key = (os.getpid(), url)
    with _lock:
        if _engine is None or _engine_key != key:
            _engine = make_engine(url)
            instrument_engine(_engine)  # SQL spans when tracing is on (geminivideo.telemetry)
            _engine_key = key
            _sessionmaker = sessionmaker(_engine, expire_on_commit=False)
        return _engine


def dispose_engine() -> None:
    """Drop this process's engine without closing the parent's connections (safe after fork)."""
    global _engine, _engine_key, _sessionmaker
    with _lock:
        if _engine is not None:
            _engine.dispose(close=False)
        _engine, _engine_key, _sessionmaker = None, None, None


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    get_engine()
    assert _sessionmaker is not None
    session = _sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
