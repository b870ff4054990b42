"""Fixtures of the reliability suite: one private deployment per test, torn down by pid.

A deployment is a private redis-server (so no session worker steals a message and a test may kill
Redis), optionally a RabbitMQ vhost as broker, its own media dirs inside MEDIA_ROOTS, and the workers,
beats and APIs the test starts through it. Task limits are shortened through the settings so that
visibility timeouts, redeliveries and schedules happen within seconds, not hours.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult
from redis import Redis  # by name: the `redis` field below shadows the module inside the class

from geminivideo import procs
from geminivideo.celery_base import make_celery
from geminivideo.contracts import ProgressEvent, TaskStatus
from geminivideo.db.migrate import upgrade
from geminivideo.ml.celery_app import SPEC as ML_SPEC
from geminivideo.progress import ProgressPublisher, read_status
from geminivideo.video.celery_app import SPEC as VIDEO_SPEC
from tests.reliability import probe_tasks
from tests.support import faults
from tests.support.env import TestEnv, applied, create_postgres_database, drop_postgres_database

# Short limits for every scenario: a sweep for expired deliveries every second, 5 s of visibility margin.
FAST_FAULTS = {"UNACKED_RESTORE_INTERVAL_S": "1", "VISIBILITY_MARGIN_S": "5"}


@dataclass
class Deployment:
    """One isolated system under test: its Redis, broker URL, directories and processes."""

    root: Path
    env: dict[str, str]
    redis: faults.PrivateRedis
    started: list[procs.ManagedProcess] = field(default_factory=list)
    apps: dict[str, Celery] = field(default_factory=dict)
    logs: list[ProgressLog] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def render_dir(self) -> Path:
        return Path(self.env["RENDER_DIR"])

    @property
    def media_dir(self) -> Path:
        return Path(self.env["GV_TEST_MEDIA_DIR"])

    def track(self, proc: procs.ManagedProcess) -> procs.ManagedProcess:
        self.started.append(proc)
        return proc

    def worker(self, app: str, queues: Sequence[str], *, name: str = "w", concurrency: int = 1,
               **overrides: str) -> procs.ManagedProcess:
        env = {**self.env, **overrides}
        return self.track(faults.start_worker(app, queues=queues, env=env, log_dir=self.log_dir, name=name,
                                              concurrency=concurrency))

    def app(self, name: str) -> Celery:
        """A client-side app bound to this deployment (configured now, from this deployment's env)."""
        if name not in self.apps:
            with applied(self.env):
                app = make_celery(VIDEO_SPEC if name == "video" else ML_SPEC)
                # Finalise the lazy configuration while the env applies (conf.broker_url alone would not:
                # Celery answers it from CELERY_BROKER_URL without loading the configuration).
                _ = app.conf["task_serializer"]
                self.apps[name] = app
        return self.apps[name]

    def send(self, app: str, task: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
             queue: str | None = None) -> AsyncResult:
        """Send a task by name, and record it ``queued`` the way GeminiTask.apply_async does."""
        options = {"queue": queue} if queue else {}
        result = self.app(app).send_task(task, args=list(args), kwargs=kwargs or {}, **options)
        if task != "process_hubspot_webhook":  # the one task that keeps no progress record
            ProgressPublisher(self.client(), result.id).publish(TaskStatus.QUEUED, 0, "waiting for a worker")
        return result

    def probe(self, app: str, key: str, seconds: float, *, queue: str, output_dir: Path | None = None,
              encode: bool = False) -> AsyncResult:
        task = probe_tasks.VIDEO_PROBE if app == "video" else probe_tasks.ML_PROBE
        return self.send(app, task, (key, seconds, str(output_dir) if output_dir else None, encode), queue=queue)

    def client(self) -> Redis:
        return self.redis.client()

    def starts(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.client().lrange(probe_tasks.starts_key(key), 0, -1)]

    def done(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.client().lrange(probe_tasks.done_key(key), 0, -1)]

    def status(self, task_id: str) -> TaskStatus | None:
        event = read_status(self.client(), task_id)
        return event.status if event else None

    def progress_log(self) -> ProgressLog:
        log = ProgressLog(self.client())
        self.logs.append(log)
        return log

    def close(self) -> None:
        for log in self.logs:
            log.close()
        for proc in reversed(self.started):
            proc.stop(timeout_s=15)
        for app in self.apps.values():
            app.close()
        self.redis.stop()
        # After everything is stopped, so a failure here leaves no process behind.
        for log in self.logs:
            log.check()


class ProgressLog:
    """Every progress message of a deployment, with the time it arrived (subscribed before tasks are sent)."""

    def __init__(self, client: redis.Redis) -> None:
        self.events: list[tuple[float, ProgressEvent]] = []
        self.malformed: list[str] = []  # messages that are not a ProgressEvent: a protocol bug, never ignored
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe("task_progress:*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="progress-log", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError):
                # The connection, not a message: Redis restarting (a fault some tests inject) or a socket redis-py
                # closed under the reader ("I/O operation on closed file"). Keep listening; it reconnects.
                time.sleep(0.1)
                continue
            if message is None:
                continue
            try:
                event = ProgressEvent.model_validate_json(message["data"])
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                self.malformed.append(f"{message['channel']}: {message['data']!r}: {exc}")
                continue
            self.events.append((time.time(), event))

    def check(self) -> None:
        """Fail when any message on a progress channel was not a valid ProgressEvent."""
        assert not self.malformed, f"{len(self.malformed)} malformed progress message(s): {self.malformed[:3]}"

    def of(self, task_id: str, status: TaskStatus | None = None) -> list[tuple[float, ProgressEvent]]:
        self.check()
        return [(at, e) for at, e in self.events if e.task_id == task_id and (status is None or e.status is status)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self._pubsub.close()


MakeDeployment = Callable[..., Deployment]


def build_deployment(test_env: TestEnv, root: Path, *, broker_url: str | None = None, appendonly: bool = False,
                     **overrides: str) -> Deployment:
    """Directories, a private Redis and the child-process environment of one deployment under ``root``."""
    names = (("TEMP_DIR", "tmp"), ("RENDER_DIR", "renders"), ("PREVIEW_DIR", "previews"))
    dirs = {key: root / name for key, name in names}
    media = root / "media"
    for path in [*dirs.values(), media]:
        path.mkdir(parents=True, exist_ok=True)
    private = faults.PrivateRedis(root / "redis", appendonly=appendonly).start()
    values = {
        **{key: str(path) for key, path in dirs.items()},
        "MEDIA_ROOTS": ":".join(str(p) for p in [*dirs.values(), media]),
        "GV_TEST_MEDIA_DIR": str(media),
        "REDIS_URL": private.url,
        **FAST_FAULTS,
        **overrides,
    }
    if broker_url:
        values["CELERY_BROKER_URL"] = broker_url
    return Deployment(root=root, env=test_env.process_env(**values), redis=private)


def sqlite_database(root: Path) -> str:
    """A migrated SQLite database of its own (fuzzing writes garbage nobody else should read)."""
    url = f"sqlite:///{root / 'fuzz.db'}"
    upgrade(url)
    return url


@pytest.fixture
def deployment(test_env: TestEnv, tmp_path: Path) -> Iterator[MakeDeployment]:
    """Factory: ``deployment(broker_url=None, appendonly=False, **ENV)``; everything it started is stopped."""
    made: list[Deployment] = []

    def _make(*, broker_url: str | None = None, appendonly: bool = False, **overrides: str) -> Deployment:
        dep = build_deployment(test_env, tmp_path / f"dep-{uuid.uuid4().hex[:6]}", broker_url=broker_url,
                               appendonly=appendonly, **overrides)
        made.append(dep)
        return dep

    yield _make
    for dep in made:
        with contextlib.suppress(Exception):
            dep.close()


@pytest.fixture
def rabbit_url() -> Iterator[str]:
    """A private vhost on the shared RabbitMQ; a required component, so a missing server is an error."""
    if not faults.rabbitmq_available():
        pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (start it: service rabbitmq-server start)")
    with faults.rabbit_vhost() as url:
        yield url


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh migrated database on the shared PostgreSQL server, dropped after the test."""
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)
