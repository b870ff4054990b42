"""RedBeat that rides out a Redis restart instead of exiting.

Stock ``redbeat.RedBeatScheduler`` extends its lock and reads the schedule from Redis on every tick; the
first ``ConnectionError`` (Redis restarting, a failover) propagates out of ``tick`` and the beat process
exits, so schedules stop until someone restarts it. Here a tick that cannot reach Redis logs a warning
and tries again a couple of seconds later, and the beat recovers by itself:

- the RedBeat lock is taken again before anything is sent when it was lost (expired during a long
  outage, or wiped by a Redis without persistence), so two beats still never send together: while this
  one waits for the lock, whichever beat holds it sends;
- the static schedule (``beat_schedule``) is written back when the Redis it finds has none (a Redis
  restarted without persistence, or flushed); with AOF it survives, ``last_run_at`` included.

A schedule that came due during the outage is sent once when Redis is back (RedBeat keeps one
``last_run_at`` per entry, so a missed period is not replayed several times).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis

log = logging.getLogger(__name__)

RETRY_S = 2.0


class ResilientRedBeatScheduler(RedBeatScheduler):
    """``redbeat.RedBeatScheduler`` whose tick survives Redis outages and a lost lock (see module doc)."""

    lock: Any = None  # redis-py Lock once held (RedBeat's attribute, typed here for mypy)

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        try:
            if self.lock_key and self.lock is None:
                self._acquire_lock()
            self._restore_static_schedule()
            return float(super().tick(min=min, **kwargs))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: Redis unavailable (%s); trying again in %.0f s", exc, RETRY_S)
            return RETRY_S
        except redis.exceptions.LockError as exc:
            # Expired during an outage or wiped with the data: take it again before sending anything.
            log.warning("beat: lost the RedBeat lock (%s); waiting to take it again", exc)
            self.lock = None
            return RETRY_S

    def _acquire_lock(self) -> None:
        """The same lock ``redbeat.acquire_distributed_beat_lock`` takes at start-up (blocking)."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)  # RedBeat's "extend to", not "by"
        log.info("beat: acquiring the lock again")
        lock.acquire()
        log.info("beat: acquired the lock again")
        self.lock = lock

    def _restore_static_schedule(self) -> None:
        conf = self.app.redbeat_conf
        if conf.schedule and not get_redis(self.app).exists(conf.schedule_key):
            log.warning("beat: the schedule is missing from Redis (restarted without persistence?); writing it again")
            self.setup_schedule()
