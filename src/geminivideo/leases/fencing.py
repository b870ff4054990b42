"""Fencing tokens: which attempt of a task may still publish, store a result or commit an output.

Each attempt (delivery) of a task takes a token with ``INCR lease_token:<task id>`` in the pool process that
runs it. Writes that others read — progress records (``progress.py``), the result (``leases/backend.py``),
outputs renamed into place (``video/ffmpeg.atomic_output``) — check in Redis that the token is still the
current one and refuse otherwise, so a newer attempt always wins over an older one still running somewhere.

An attempt also watches its own lease: the process's watchdog thread confirms the token every
``LEASE_RENEW_S`` unless a fenced write has just done so. When a newer token appears, or Redis could not be
reached for ``LEASE_TIMEOUT_S`` (the worker's renewals have failed for as long, so its delivery is being
handed to another worker), the attempt is *lost*: the thread kills the process groups it runs (FFmpeg), and
the task unwinds at its next progress step, publishes nothing and rejects its delivery back to the broker
instead of acknowledging it.

The current attempt is kept per thread of execution (a ``ContextVar``): one task runs at a time in a pool
process, and the watchdog thread holds its attempt directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from geminivideo.config import get_settings
from geminivideo.errors import LeaseLost
from geminivideo.redis_client import get_redis

log = logging.getLogger(__name__)

TOKEN_TTL_S = 7 * 24 * 3600  # longer than any retry chain of one task id
_current: ContextVar[Attempt | None] = ContextVar("geminivideo_lease_attempt", default=None)
_probe_clients: dict[int, redis.Redis] = {}


def token_key(task_id: str) -> str:
    return f"lease_token:{task_id}"


def _probe_client(timeout_s: float) -> redis.Redis:
    """A client whose calls give up within ``timeout_s``: a cut link must not hold the watchdog past its deadline."""
    pid = os.getpid()
    if pid not in _probe_clients:
        _probe_clients.clear()  # a forked child never reuses its parent's sockets
        # No retries inside the call (redis-py retries 3 times with backoff by default): the watchdog retries.
        _probe_clients[pid] = redis.Redis.from_url(get_settings().redis_url, decode_responses=True,
                                                   socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                                   retry=Retry(NoBackoff(), 0))
    return _probe_clients[pid]


class Attempt:
    """One attempt's token and the watch over its lease."""

    def __init__(self, task_id: str, token: int, *, timeout_s: float, renew_s: float) -> None:
        self.task_id = task_id
        self.token = token
        self.timeout_s = timeout_s
        self.renew_s = renew_s
        self._confirmed_at = time.monotonic()
        self._lost: str | None = None
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = False

    # ─── state ──────────────────────────────────────────────────────────────────────────────────────
    @property
    def lost(self) -> str | None:
        """Why this attempt lost its lease, or None while it holds it."""
        return self._lost

    def confirmed(self) -> None:
        """A fenced write just succeeded: the token was current a moment ago."""
        self._confirmed_at = time.monotonic()

    def superseded(self, how: str = "a newer attempt holds the task") -> None:
        self._lose(how)

    def ensure(self) -> None:
        """Raise LeaseLost if the attempt has lost its lease (cheap: no Redis call)."""
        if self._lost is not None:
            raise LeaseLost(f"task {self.task_id} attempt {self.token}: {self._lost}")

    def check(self) -> None:
        """Confirm in Redis, now, that this attempt still holds the task; raise LeaseLost otherwise.

        Used right before an output is committed. Redis trouble is retried until the lease deadline passes:
        an attempt that cannot prove it is current must not commit."""
        while True:
            self.ensure()
            if self._probe():
                return
            time.sleep(min(0.5, self.renew_s))

    # ─── process groups to stop with the attempt ────────────────────────────────────────────────────
    @contextlib.contextmanager
    def guarding(self, pgid: int) -> Iterator[None]:
        """Kill process group ``pgid`` (FFmpeg started with ``start_new_session``) if the lease is lost."""
        with self._lock:
            self._groups.add(pgid)
        try:
            if self._lost is not None:
                _kill_group(pgid)
            yield
        finally:
            with self._lock:
                self._groups.discard(pgid)

    # ─── lifecycle ──────────────────────────────────────────────────────────────────────────────────
    def start(self) -> None:
        _watchdog().watch(self)

    def stop(self) -> None:
        self._stopped = True
        _watchdog().unwatch(self)

    def tick(self) -> float | None:
        """One look at the lease (called by the process's watchdog): confirm it when due, lose it past the
        deadline. Returns the seconds until the next look, or None once the attempt is over or lost."""
        if self._stopped or self._lost is not None:
            return None
        silent_s = time.monotonic() - self._confirmed_at
        if silent_s >= self.timeout_s:
            self._lose(f"could not confirm its lease with Redis for {silent_s:.1f} s "
                       f"(LEASE_TIMEOUT_S={self.timeout_s:g})")
        elif silent_s >= self.renew_s:
            self._probe()
        return None if self._lost is not None else self._next_check_in()

    def _next_check_in(self) -> float:
        deadline_in = self._confirmed_at + self.timeout_s - time.monotonic()
        return max(0.05, min(self.renew_s, deadline_in))

    def _probe(self) -> bool:
        """GET the current token: True when it is ours (confirmed); a newer one loses the attempt."""
        try:
            raw = _probe_client(max(0.5, min(self.renew_s / 2, 5.0))).get(token_key(self.task_id))
        except redis.RedisError as exc:
            log.warning("lease of task %s attempt %d not confirmed: %s", self.task_id, self.token, exc)
            if time.monotonic() - self._confirmed_at >= self.timeout_s:
                self._lose(f"could not reach Redis for LEASE_TIMEOUT_S={self.timeout_s:g} s ({exc})")
            return False
        current = int(raw or 0)
        if current != self.token:
            self._lose(f"attempt {current} holds the task now")
            return False
        self.confirmed()
        return True

    def _lose(self, why: str) -> None:
        with self._lock:
            if self._lost is not None:
                return
            self._lost = why
            groups = list(self._groups)
        log.warning("task %s attempt %d lost its lease: %s; stopping it, publishing nothing", self.task_id,
                    self.token, why)
        for pgid in groups:
            _kill_group(pgid)


class _Watchdog:
    """One daemon thread per process that ticks every running attempt (a pool process runs one at a time):
    starting a thread per task would cost more than a short webhook task itself."""

    def __init__(self) -> None:
        self._attempts: set[Attempt] = set()
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lease-watchdog", daemon=True)
        self._thread.start()

    def watch(self, attempt: Attempt) -> None:
        with self._wake:
            self._attempts.add(attempt)
            self._wake.notify()

    def unwatch(self, attempt: Attempt) -> None:
        with self._wake:
            self._attempts.discard(attempt)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._attempts:
                    self._wake.wait()
                attempts = list(self._attempts)
            waits = {attempt: attempt.tick() for attempt in attempts}  # outside the lock: ticks may call Redis
            with self._wake:
                for attempt, wait in waits.items():
                    if wait is None:
                        self._attempts.discard(attempt)
                pending = [wait for attempt, wait in waits.items() if wait is not None and attempt in self._attempts]
                if pending:
                    self._wake.wait(timeout=min(pending))


_watchdogs: dict[int, _Watchdog] = {}
_watchdogs_lock = threading.Lock()


def _watchdog() -> _Watchdog:
    """This process's watchdog (a forked child starts its own: threads do not survive fork)."""
    with _watchdogs_lock:
        pid = os.getpid()
        if pid not in _watchdogs:
            _watchdogs.clear()
            _watchdogs[pid] = _Watchdog()
        return _watchdogs[pid]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ─── the current attempt ──────────────────────────────────────────────────────────────────────────────
def begin(task_id: str) -> Attempt:
    """Take the next token of ``task_id`` and watch its lease; the attempt becomes current in this context."""
    settings = get_settings()
    client = get_redis()
    with client.pipeline() as pipe:
        pipe.incr(token_key(task_id))
        pipe.expire(token_key(task_id), TOKEN_TTL_S)
        token = int(pipe.execute()[0])
    attempt = Attempt(task_id, token, timeout_s=settings.lease_timeout_s, renew_s=settings.lease_renew_interval_s)
    previous = _current.get()
    if previous is not None:
        previous.stop()
    _current.set(attempt)
    attempt.start()
    return attempt


def current(task_id: str | None = None) -> Attempt | None:
    """The attempt running in this context (of ``task_id`` when given), or None outside a task."""
    attempt = _current.get()
    if attempt is None or (task_id is not None and attempt.task_id != task_id):
        return None
    return attempt


def end(task_id: str) -> None:
    """Stop watching ``task_id``'s attempt (the task returned, failed or was rejected)."""
    attempt = current(task_id)
    if attempt is not None:
        attempt.stop()
        _current.set(None)


def check_current() -> None:
    """Before committing an output: raise LeaseLost unless the running attempt (if any) holds its task."""
    attempt = _current.get()
    if attempt is not None:
        attempt.check()


@contextlib.contextmanager
def guarding(pgid: int) -> Iterator[None]:
    """Let the running attempt (if any) kill process group ``pgid`` when it loses its lease."""
    attempt = _current.get()
    if attempt is None:
        yield
        return
    with attempt.guarding(pgid):
        yield
