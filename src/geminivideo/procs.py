"""Start and stop the processes this system is made of: a local Redis, Celery workers, beat, the API.

Used by ``geminivideo demo``, the start scripts' Python helpers and the test fixtures, so that every
process is started the same way and stopped by pid (its whole process group).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


WORKER_APPS = {"video": "geminivideo.video.celery_app:app", "ml": "geminivideo.ml.celery_app:app"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s:.0f} s")


@dataclass
class ManagedProcess:
    """A child process in its own session; ``stop()`` signals the whole group, then waits."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` to the main process only (a Celery worker's warm shutdown lets its pool children
        finish), KILL the whole group after ``timeout_s``; return the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Stragglers (pool children, FFmpeg) that outlived the parent share the group id.
        self.signal_group(signal.SIGKILL)
        return self.popen.returncode


def spawn(
    name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log_path: Path | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    stdout: int | IO[bytes] = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stdout = open(log_path, "ab")  # noqa: SIM115  (the child keeps its own copy; ours is closed below)
    try:
        popen = subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, stdout=stdout, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
        )
    finally:
        if not isinstance(stdout, int):
            stdout.close()
    return ManagedProcess(name, popen, log_path)


def start_redis(port: int | None = None, *, data_dir: Path, appendonly: bool = False) -> tuple[ManagedProcess, str]:
    """A private redis-server on loopback; returns the process and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server (or run `make setup`)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(data_dir),
            "--appendonly", "yes" if appendonly else "no", "--daemonize", "no", "--protected-mode", "yes"]
    proc = spawn("redis", argv, log_path=data_dir / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url) or not proc.alive(), 15, what="redis-server start")
    except TimeoutError:
        proc.stop()
        raise
    if not proc.alive():
        raise RuntimeError(f"redis-server exited at start:\n{proc.log_tail()}")
    return proc, url


def celery_argv(
    app: str, *, queues: Sequence[str], concurrency: int, hostname: str, loglevel: str = "INFO",
    max_tasks_per_child: int | None = None, pool: str = "prefork",
) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", WORKER_APPS[app], "worker", "-Q", ",".join(queues),
            "-c", str(concurrency), "-n", hostname, "--pool", pool, "-l", loglevel, "-E",
            "--without-gossip", "--without-mingle"]
    if max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(max_tasks_per_child)]
    return argv


def start_worker(
    app: str, *, queues: Sequence[str], hostname: str, env: Mapping[str, str], log_path: Path,
    concurrency: int = 1, ready_timeout_s: float = 60.0, pool: str = "prefork", include: Sequence[str] = (),
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> ManagedProcess:
    """Start a Celery worker and wait until it answers a ping by its hostname.

    ``include``: extra task modules the worker imports (``-I``); ``wrap``: turns the command into the one to
    run (e.g. inside a network namespace), keeping the program's own pid.
    """
    argv = celery_argv(app, queues=queues, concurrency=concurrency, hostname=hostname, pool=pool)
    if include:
        argv += ["-I", ",".join(include)]
    proc = spawn(f"worker:{hostname}", wrap(argv) if wrap else argv, env=env, log_path=log_path)
    proc.extra["hostname"] = hostname
    try:
        wait_worker_ready(proc, env, ready_timeout_s)
    except BaseException:
        proc.stop(timeout_s=5)
        raise
    return proc


def start_api(
    env: Mapping[str, str], log_path: Path, *, app: str = "geminivideo.api:app", ready_path: str = "/openapi.json",
    require_ok: bool = True, uvicorn_args: Sequence[str] = ("--log-level", "warning"), name: str = "api",
    timeout_s: float = 60.0,
) -> tuple[ManagedProcess, str]:
    """uvicorn serving ``app`` on a free loopback port; returns the process and its base URL.

    Ready when ``ready_path`` answers 200 (any answer with ``require_ok=False``, e.g. a degraded
    ``/health``); an exit before that raises RuntimeError with the log's tail, a timeout TimeoutError.
    """
    import httpx  # only the callers that serve the API need it

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *uvicorn_args]
    proc = spawn(name, argv, env=env, log_path=log_path)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited at start:\n{proc.log_tail()}")
        try:
            response = httpx.get(base + ready_path, timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 or not require_ok

    try:
        wait_until(answers, timeout_s, interval_s=0.3, what=f"{name} {ready_path}")
    except BaseException:
        proc.stop(timeout_s=5)
        raise
    return proc, base


def ping_worker(app: str, hostname: str, env: Mapping[str, str], timeout_s: float = 2.0) -> bool:
    """Ask one worker for ``inspect ping`` using a throw-away app bound to ``env``'s broker."""
    from celery import Celery

    broker = env.get("CELERY_BROKER_URL") or env["REDIS_URL"]
    probe = Celery(f"probe-{app}", broker=broker, set_as_current=False)
    try:
        replies = probe.control.ping(destination=[hostname], timeout=timeout_s)
    except Exception:
        return False
    finally:
        probe.close()
    return any(hostname in reply for reply in replies)


def wait_worker_ready(proc: ManagedProcess, env: Mapping[str, str], timeout_s: float) -> None:
    hostname = str(proc.extra["hostname"])
    app = "video" if "video" in " ".join(proc.popen.args) else "ml"  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        if ping_worker(app, hostname, env):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{proc.name} did not answer ping within {timeout_s:.0f} s:\n{proc.log_tail()}")
