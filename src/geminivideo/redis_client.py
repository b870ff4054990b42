"""One Redis client per process for progress keys, locks and resource snapshots.

Created lazily and re-created after ``fork()`` so prefork pool children never share a socket.
"""

from __future__ import annotations

import os
import threading

import redis

from geminivideo.config import get_settings
from geminivideo.telemetry.tracing import instrument_redis_client

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_pid: int | None = None


def get_redis() -> redis.Redis:
    """Return this process's client for ``REDIS_URL`` (decoded strings, bounded timeouts)."""
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _client = redis.Redis.from_url(
                get_settings().redis_url,
                decode_responses=True,
                socket_connect_timeout=5,
                socket_timeout=10,
                health_check_interval=30,
                retry_on_timeout=True,
            )
            instrument_redis_client(_client)  # Redis spans when tracing is on (geminivideo.telemetry)
            _client_pid = os.getpid()
        return _client


def reset_redis() -> None:
    """Forget the client (after a settings change in tests or scripts)."""
    global _client, _client_pid
    with _lock:
        _client, _client_pid = None, None
