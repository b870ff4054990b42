"""Celery's Redis result backend, fenced: a task's result is stored only by the attempt holding its lease.

Celery writes ``celery-task-meta-<id>`` with SETEX + PUBLISH from the pool process that ran the task. Here,
when that process runs an attempt (``leases.fencing.current``), the write is one Lua call that first checks
``lease_token:<id>`` is still the attempt's token: an attempt superseded after its last check stores nothing
(and learns it is lost). Writes outside an attempt (clients, revokes, the main process) are Celery's own.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.backends.redis import RedisBackend

from geminivideo.leases import fencing

log = logging.getLogger(__name__)

BACKEND_PATH = "geminivideo.leases.backend:FencedRedisBackend"

# KEYS: meta key, lease token key; ARGV: value, expiry seconds (0: none), token. 1 stored, 0 superseded.
_FENCED_SET_LUA = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[3]) then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


def fenced_url(result_backend: str) -> str:
    """``result_backend`` with this class in front, when it is a Redis URL (Celery's ``module:Class+url`` form)."""
    if result_backend.startswith(("redis://", "rediss://", "unix://")):
        return f"{BACKEND_PATH}+{result_backend}"
    return result_backend


class FencedRedisBackend(RedisBackend):
    """RedisBackend whose result writes check the running attempt's fencing token atomically."""

    def _set(self, key: Any, value: Any, expires: Any = None) -> None:
        attempt = fencing.current()
        if attempt is None or _as_text(key) != _as_text(self.get_key_for_task(attempt.task_id)):
            super()._set(key, value, expires)
            return
        if attempt.lost is not None:
            log.warning("result of task %s not stored: attempt %d lost its lease", attempt.task_id, attempt.token)
            return
        ttl = self.expires if expires is None else expires
        stored = self.client.eval(_FENCED_SET_LUA, 2, key, fencing.token_key(attempt.task_id), value,
                                  int(ttl or 0), attempt.token)
        if not stored:
            attempt.superseded("a newer attempt holds the task (result not stored)")
            log.warning("result of task %s not stored: attempt %d is superseded", attempt.task_id, attempt.token)


def _as_text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)
