"""Fault-injection helpers for tests/reliability: processes that can be killed and restarted for real.

Everything here starts real processes on loopback (redis-server, a private PostgreSQL cluster, Celery
workers and beat, uvicorn) or real kernel objects (a tmpfs, a RabbitMQ vhost), and every helper that
starts something also knows how to stop it by pid or name. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import redis

from geminivideo import procs
from geminivideo.db.migrate import upgrade

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PROBE_MODULE = "tests.reliability.probe_tasks"


# ─── processes ──────────────────────────────────────────────────────────────────────────────────────
def kill9(proc: procs.ManagedProcess) -> None:
    """``kill -9`` the whole process group (worker main process, pool children, FFmpeg) and reap it."""
    proc.signal_group(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=10)
    # SIGKILL is delivered asynchronously: wait until no member of the group still runs.
    procs.wait_until(lambda: not group_alive(proc), 10, interval_s=0.05, what=f"{proc.name} group gone")


def group_members(proc: procs.ManagedProcess) -> list[psutil.Process]:
    """The live (not zombie) processes of ``proc``'s process group."""
    members = []
    for candidate in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(candidate.pid) == proc.pid and candidate.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(candidate)
    return members


def group_alive(proc: procs.ManagedProcess) -> bool:
    """True while any process of ``proc``'s group still runs (zombies waiting for a reaper do not count)."""
    return bool(group_members(proc))


def start_worker(
    app: str, *, queues: Sequence[str], env: Mapping[str, str], log_dir: Path, name: str = "w",
    concurrency: int = 1, include: Sequence[str] = (PROBE_MODULE,), ready_timeout_s: float = 90.0,
) -> procs.ManagedProcess:
    """A real Celery worker that also imports ``include`` (the probe tasks), ready when it answers a ping."""
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@localhost"
    return procs.start_worker(app, queues=queues, hostname=hostname, env=env, log_path=log_dir / f"{hostname}.log",
                              concurrency=concurrency, ready_timeout_s=ready_timeout_s, include=include)


def start_beat(app: str, *, env: Mapping[str, str], log_path: Path) -> procs.ManagedProcess:
    """``celery beat`` with the app's RedBeat scheduler (the lock lets only one of several beats send)."""
    argv = [sys.executable, "-m", "celery", "-A", procs.WORKER_APPS[app], "beat", "-l", "INFO",
            "--pidfile", ""]
    return procs.spawn(f"beat:{app}", argv, env=env, log_path=log_path)


def start_api(env: Mapping[str, str], log_path: Path, *, timeout_s: float = 60.0) -> tuple[procs.ManagedProcess, str]:
    """uvicorn serving ``geminivideo.api:app`` on a free loopback port; ready when it answers HTTP at all."""
    return procs.start_api(env, log_path, require_ok=False, timeout_s=timeout_s)


# ─── Redis ──────────────────────────────────────────────────────────────────────────────────────────
@dataclass
class PrivateRedis:
    """A redis-server on its own port and data dir that a test may kill and start again on the same port."""

    data_dir: Path
    appendonly: bool = True
    port: int = field(default_factory=procs.free_port)
    proc: procs.ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc, url = procs.start_redis(self.port, data_dir=self.data_dir, appendonly=self.appendonly)
        assert url == self.url
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown save, only what the AOF already holds survives."""
        if self.proc is not None:
            kill9(self.proc)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout_s=10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)


# ─── PostgreSQL ─────────────────────────────────────────────────────────────────────────────────────
@dataclass
class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own (initdb in a temp dir, own port): the test may stop it at will,
    unlike the shared server other test sessions use."""

    root: Path
    port: int = field(default_factory=procs.free_port)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _as_postgres(self, *argv: str, timeout_s: float = 120) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")

    def init(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "pg.log"),
                          "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the cluster; ``immediate`` drops every connection at once, like a crashed server."""
        with contextlib.suppress(RuntimeError):
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def create_database(self, name: str = "gv") -> str:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
        upgrade(url)
        return url

    def destroy(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster in a fresh folder under /tmp (pytest's tmp dirs are root-only: the
    postgres user could not enter them)."""
    pg = PrivatePostgres(Path(tempfile.mkdtemp(prefix="gv-pg-"))).init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


# ─── RabbitMQ ───────────────────────────────────────────────────────────────────────────────────────
def _rabbitmqctl(*argv: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *argv], capture_output=True, text=True, timeout=60, check=True)


def rabbitmq_available() -> bool:
    try:
        _rabbitmqctl("status")
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@contextlib.contextmanager
def rabbit_vhost() -> Iterator[str]:
    """A throw-away vhost on the shared RabbitMQ (guest may use it); yields its ``amqp://`` URL."""
    vhost = f"gv_test_{secrets.token_hex(5)}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _rabbitmqctl("delete_vhost", vhost)


# ─── disk full ──────────────────────────────────────────────────────────────────────────────────────
@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """Mount a tiny tmpfs at ``path`` (we run as root): writes past ``size`` fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True,
                   capture_output=True, timeout=30)
    try:
        yield path
    finally:
        for _ in range(5):
            done = subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=False)
            if done.returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


# ─── waiting ────────────────────────────────────────────────────────────────────────────────────────
def wait_for(predicate: object, timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Wait until ``predicate()`` is true; return the seconds it took (for the measured numbers)."""
    started = time.monotonic()
    procs.wait_until(predicate, timeout_s, interval_s=interval_s, what=what)
    return time.monotonic() - started
