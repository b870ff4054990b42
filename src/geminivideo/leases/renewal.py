"""Lease renewal on Redis: one thread per consuming channel (one per worker process) that keeps alive every
delivery the worker holds.

kombu scores each unacknowledged delivery in a sorted set (the unacked index) and its restore sweep hands
back to the queue whatever scored more than ``visibility_timeout`` seconds ago. With the visibility timeout
set to ``LEASE_TIMEOUT_S``, the renewer re-scores the worker's deliveries to *now* every ``LEASE_RENEW_S``
in one script call (``ZADD XX`` per tag: an acknowledged or already restored delivery is never re-added),
so a delivery stays invisible while its worker lives, however long the task or its ETA wait, and comes
back ``LEASE_TIMEOUT_S`` (plus one sweep) after the worker stops renewing: killed, frozen, cut off.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# KEYS[1] the unacked index; ARGV[1] the new score, ARGV[2..] delivery tags. Returns the tags no longer there.
RENEW_LUA = """
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i]) == 0 then
    if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then missing[#missing + 1] = ARGV[i] end
  end
end
return missing
"""


@dataclass
class RenewalStats:
    """What a renewer did (read by tests and the benchmark through the worker's log)."""

    rounds: int = 0
    renewed: int = 0
    failures: int = 0
    last_ok_at: float | None = None
    lost_tags: list[str] = field(default_factory=list)


class LeaseRenewer:
    """Renews ``held()`` in ``index_key`` every ``interval_s`` from a daemon thread, until ``alive()`` is false."""

    def __init__(self, client: Any, index_key: str, interval_s: float, held: Callable[[], Sequence[str]],
                 alive: Callable[[], bool]) -> None:
        self._client = client
        self._index_key = index_key
        self.interval_s = interval_s
        self._held = held
        self._alive = alive
        self._script = client.register_script(RENEW_LUA)
        self.stats = RenewalStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)

    def start(self) -> LeaseRenewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s) and self._alive():
            try:
                self.renew_once()
            except Exception as exc:  # a renewal thread that died would let every lease expire
                self.stats.failures += 1
                log.warning("lease renewal of %s failed (%s); retrying in %.1f s", self._index_key, exc,
                            self.interval_s)

    def renew_once(self) -> list[str]:
        """One round trip: re-score every held delivery to now; return the tags that were no longer indexed."""
        tags = list(self._held())
        if not tags:
            return []
        missing = [t.decode() if isinstance(t, bytes) else str(t)
                   for t in self._script(keys=[self._index_key], args=[time.time(), *tags])]
        self.stats.rounds += 1
        self.stats.renewed += len(tags) - len(missing)
        self.stats.last_ok_at = time.time()
        if missing:
            # Restored after a lapse (frozen or cut-off worker): another worker may run it now. The attempt here
            # finds out through its fencing token and stops; nothing to renew any more.
            self.stats.lost_tags.extend(missing)
            log.warning("%d deliveries were restored to their queue while this worker held them (lease lapsed): %s",
                        len(missing), missing)
        return missing


def renewer_for(qos: Any, interval_s: float) -> LeaseRenewer:
    """A started renewer for a kombu Redis QoS, holding it weakly (the thread ends with the channel)."""
    ref = weakref.ref(qos)

    def held() -> Sequence[str]:
        owner = ref()
        return owner.held_tags() if owner is not None else []

    def alive() -> bool:
        # A channel closed by a lost connection still holds the tasks running at that moment (they ack through
        # it when they end): keep renewing those until none is left.
        owner = ref()
        return owner is not None and (not owner.channel.closed or bool(owner.held_tags()))

    client = qos.channel._create_client(asynchronous=False)
    return LeaseRenewer(client, qos.unacked_index_key, interval_s, held, alive).start()
