"""Session fixtures: a private Redis, temp media dirs, SQLite and PostgreSQL databases, real workers.

Nothing here mocks a component: workers are real ``celery worker`` processes on a real Redis, and
every process a fixture starts is stopped by pid (its whole process group) when the fixture ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from geminivideo import procs
from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER
from geminivideo.db.migrate import upgrade
from tests.support import leaks
from tests.support.env import (
    TestEnv,
    applied,
    build_values,
    create_postgres_database,
    drop_postgres_database,
)

StartWorker = Callable[..., procs.ManagedProcess]


_SESSION: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Build the isolated environment before collection: importing a task module may configure its app."""
    if hasattr(config, "workerinput"):
        return
    # The session-wide scan of every log the suite writes for test secrets, IP addresses and user agents
    # (registered here, not through pytest_plugins: this conftest imports it first; -p no:leaks turns it off).
    config.pluginmanager.register(leaks, "leaks")
    root = Path(tempfile.mkdtemp(prefix="gv-test-"))
    redis_proc, redis_url = procs.start_redis(data_dir=root / "redis")
    sqlite_url = f"sqlite:///{root / 'geminivideo.db'}"
    values = build_values(root, redis_url, sqlite_url)
    env = TestEnv(root=root, redis_url=redis_url, sqlite_url=sqlite_url, values=values)
    context = applied(env.values)
    context.__enter__()
    _SESSION.update(env=env, redis=redis_proc, context=context)
    leaks.add_root(config, root)
    upgrade(sqlite_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    redis_proc = _SESSION.pop("redis", None)
    if isinstance(redis_proc, procs.ManagedProcess):
        redis_proc.stop()
    context = _SESSION.pop("context", None)
    if context is not None:
        context.__exit__(None, None, None)  # type: ignore[attr-defined]
    env = _SESSION.pop("env", None)
    if isinstance(env, TestEnv) and not os.environ.get("GV_TEST_KEEP"):
        shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture(scope="session")
def test_env() -> TestEnv:
    env = _SESSION["env"]
    assert isinstance(env, TestEnv)
    return env


@pytest.fixture(scope="session")
def redis_client(test_env: TestEnv) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(test_env.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_url(test_env: TestEnv) -> Iterator[str]:
    """A migrated PostgreSQL database private to this session (dropped at the end). Never skipped."""
    name, url = create_postgres_database()
    yield url
    drop_postgres_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, test_env: TestEnv) -> Iterator[str]:
    """Run a test once on SQLite and once on PostgreSQL; DATABASE_URL points at the one in use."""
    url = test_env.sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with applied({"DATABASE_URL": url}):
        yield url


@pytest.fixture
def start_worker(test_env: TestEnv, tmp_path: Path) -> Iterator[StartWorker]:
    """Factory: start a real Celery worker for this test; all are stopped when the test ends."""
    started: list[procs.ManagedProcess] = []

    def _start(app: str, *, queues: list[str] | None = None, concurrency: int = 1, name: str | None = None,
               **env_overrides: str) -> procs.ManagedProcess:
        queues = queues or [str(q) for q in (VIDEO_QUEUE_ORDER if app == "video" else ML_QUEUE_ORDER)]
        hostname = f"{name or app}-{uuid.uuid4().hex[:8]}@localhost"
        proc = procs.start_worker(
            app, queues=queues, hostname=hostname, concurrency=concurrency,
            env=test_env.process_env(**env_overrides), log_path=tmp_path / f"{hostname}.log",
        )
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()


def _session_worker(test_env: TestEnv, app: str, queues: list[str], concurrency: int) -> Iterator[procs.ManagedProcess]:
    hostname = f"{app}-session-{uuid.uuid4().hex[:6]}@localhost"
    proc = procs.start_worker(
        app, queues=queues, hostname=hostname, concurrency=concurrency, env=test_env.process_env(),
        log_path=test_env.root / f"{hostname}.log",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def video_worker(test_env: TestEnv) -> Iterator[procs.ManagedProcess]:
    """One video worker consuming every video queue (most urgent first), concurrency 2, on SQLite.

    Per module, not per session: a worker left running on the standard queues would take the tasks of later
    modules that start their own workers (a split job's parts, an object-store worker's jobs)."""
    yield from _session_worker(test_env, "video", [str(q) for q in VIDEO_QUEUE_ORDER], 2)


@pytest.fixture(scope="module")
def ml_worker(test_env: TestEnv) -> Iterator[procs.ManagedProcess]:
    """One ML worker consuming every ML queue, concurrency 2, on the session's SQLite database."""
    yield from _session_worker(test_env, "ml", [str(q) for q in ML_QUEUE_ORDER], 2)
