"""A registry of files and folders that running tasks are using, so cleanup never deletes them.

Each entry is a member of one Redis sorted set (``media_in_use``) scored by its expiry time. A task
holds its paths with ``in_use(...)``: a background thread renews the lease while the task runs, so a
crashed worker's entries simply expire. Shared by every host that shares the media storage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import redis

from geminivideo.config import get_settings
from geminivideo.redis_client import get_redis

log = logging.getLogger(__name__)

IN_USE_KEY = "media_in_use"
DEFAULT_LEASE_S = 120.0


_HOLDER_SEP = "\0"  # cannot occur in a path: separates the path from its holder's token


def _members(paths: Iterable[Path], holder: str) -> list[str]:
    # One member per holder and path: when one of two tasks sharing an input ends, the other's lease stays.
    return [f"{Path(p).resolve()}{_HOLDER_SEP}{holder}" for p in paths]


def _renew(client: redis.Redis, members: list[str], lease_s: float) -> None:
    expiry = time.time() + lease_s
    client.zadd(IN_USE_KEY, dict.fromkeys(members, expiry))


@contextlib.contextmanager
def in_use(*paths: Path, lease_s: float | None = None) -> Iterator[None]:
    """Mark ``paths`` (files or folders) as in use for as long as the block runs.

    ``lease_s`` (default IN_USE_LEASE_S, 120 s) is how long a killed worker's paths stay protected.
    """
    lease_s = lease_s or get_settings().in_use_lease_s
    client = get_redis()
    members = _members(paths, uuid.uuid4().hex)
    try:
        _renew(client, members, lease_s)
    except redis.RedisError as exc:
        # The task itself must not fail because the guard is unavailable; cleanup also refuses to
        # run without Redis (it cannot know what is in use), so nothing is put at risk.
        log.warning("could not register %s as in use: %s", members, exc)
    stop = threading.Event()

    def _heartbeat() -> None:
        while not stop.wait(lease_s / 3):
            with contextlib.suppress(redis.RedisError):
                _renew(client, members, lease_s)

    thread = threading.Thread(target=_heartbeat, name="in-use-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        with contextlib.suppress(redis.RedisError):
            client.zrem(IN_USE_KEY, *members)


def hold(*paths: Path, holder: str, lease_s: float) -> None:
    """Mark ``paths`` in use for ``lease_s`` under a named holder, beyond the calling task (no heartbeat).

    For files that several tasks use one after another (a split transcode's parts between its split and its
    stitch): the last of them calls ``release`` with the same holder; a job that dies leaves a lease that expires.
    """
    with contextlib.suppress(redis.RedisError):  # as in_use: the guard being down must not fail the task
        _renew(get_redis(), _members(paths, holder), lease_s)


def release(*paths: Path, holder: str) -> None:
    """End a ``hold`` of ``paths`` by ``holder`` (nothing happens when it has already expired)."""
    with contextlib.suppress(redis.RedisError):
        get_redis().zrem(IN_USE_KEY, *_members(paths, holder))


def paths_in_use(client: redis.Redis | None = None) -> set[Path]:
    """Every path currently held by a live lease (expired leases are purged first)."""
    client = client or get_redis()
    client.zremrangebyscore(IN_USE_KEY, "-inf", time.time())
    return {Path(str(member).split(_HOLDER_SEP, 1)[0]) for member in client.zrange(IN_USE_KEY, 0, -1)}


def is_in_use(path: Path, held: set[Path]) -> bool:
    """True when ``path`` is held, or lies inside a held folder."""
    resolved = Path(path).resolve()
    return any(resolved == h or resolved.is_relative_to(h) for h in held)
