"""kombu's Redis transport with a visibility timeout per queue, and one unacknowledged index per app.

Stock kombu keeps one sorted set of unacknowledged deliveries per Redis database, scored by delivery
time, and restores an entry once it is older than the channel's single ``visibility_timeout``. That
forces one timeout on every queue: a 90-second webhook whose worker was killed would wait as long as
a one-hour render before another worker gets it.

Here a delivery is scored as if it had been delivered ``visibility_timeout - queue timeout`` seconds
earlier (plus later by the message's ETA, for retries with a countdown that a worker holds before
running), so kombu's own restore sweep, with the app's longest timeout, brings each message back
after its *own* queue's timeout. Only ``QoS.append`` changes; restore, ack and reject are kombu's.
The channel also remembers its connection parameters, so losing Redis (a restart) no longer kills the
worker (see ``Channel._connparams``).

The per-queue timeouts (``queue_visibility_timeouts``) and the per-app key names come in as transport
options from ``celery_base.build_config``. Each app gets its own ``unacked*`` keys because the index
is shared by every consumer of the database: with one index, the app with the shorter timeout would
restore the other app's long tasks while they still run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from time import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

TRANSPORT_PATH = "geminivideo.redis_transport:Transport"


def eta_delay_s(headers: Mapping[str, Any] | None, now: float) -> float:
    """Seconds until a Celery message's ``eta`` header (0 when it has none, is past or unreadable)."""
    raw = (headers or {}).get("eta")
    if not raw:
        return 0.0
    try:
        eta = datetime.fromisoformat(str(raw))
    except ValueError:
        return 0.0
    if eta.tzinfo is None:
        eta = eta.replace(tzinfo=UTC)  # Celery with enable_utc sends UTC
    return max(0.0, eta.timestamp() - now)


class QoS(kombu_redis.QoS):
    """Ack emulation whose index score encodes the message's own restore deadline."""

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        now = time()
        score = now + self.channel.score_offset_s(routing_key) + eta_delay_s(message.headers, now)
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: score}).hset(
                self.unacked_key, delivery_tag, dumps([message._raw, exchange, routing_key])
            ).execute()
        virtual.QoS.append(self, message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

    #: queue (routing key) -> seconds an unacknowledged delivery of it stays invisible
    queue_visibility_timeouts: Mapping[str, float] = {}

    from_transport_options: tuple[str, ...] = (  # type: ignore[assignment]  # kombu types it as a fixed tuple
        *kombu_redis.Channel.from_transport_options, "queue_visibility_timeouts",
    )

    _sync_connparams: dict[str, Any] | None = None

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """kombu's connection parameters, remembered: when the broker connection is lost, kombu closes the
        connection (``transport.client`` becomes None) before this channel restores or acks its deliveries,
        and stock kombu then dies with ``AttributeError`` and takes the worker down (kombu 5.7). With the
        address remembered, the restore fails with a connection error that kombu ignores (the deliveries
        stay in the unacked index) and a task still running acks through this channel when it ends."""
        transport = self.connection
        if transport is not None and transport.client is not None:
            params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
            if not asynchronous:
                self._sync_connparams = dict(params)
            return params
        if not asynchronous and self._sync_connparams is not None:
            return dict(self._sync_connparams)
        return dict(super()._connparams(asynchronous=asynchronous))

    def score_offset_s(self, routing_key: str) -> float:
        """How much earlier than now to score a delivery so it is restored after its queue's timeout.

        Unknown queues keep the app's (longest) timeout: restoring late is safe, restoring early is not.
        """
        own = self.queue_visibility_timeouts.get(routing_key)
        if own is None:
            return 0.0
        return min(0.0, float(own) - float(self.visibility_timeout))


class Transport(kombu_redis.Transport):
    Channel = Channel
