"""kombu's Redis transport with renewable leases, and one unacknowledged index per app.

Stock kombu keeps one sorted set of unacknowledged deliveries, scored by delivery time, and restores an entry
once it is older than the channel's single ``visibility_timeout``: a dead worker's one-hour render waits an
hour, and a task longer than the timeout is delivered twice while it still runs (celery/celery#5935).

Here the visibility timeout is a *lease* (``LEASE_TIMEOUT_S``) that the worker holding a delivery renews
every ``LEASE_RENEW_S`` (``leases/renewal.py``: one script call per interval for everything the channel
holds, running or waiting for its ETA), so a delivery is restored by kombu's own sweep only once its worker
has stopped renewing it. Restore and ack are kombu's; ``QoS.append`` starts the renewer, ``QoS.reject``
stops renewing a delivery it hands back. The channel also remembers its connection parameters, so losing
Redis (a restart) no longer kills the worker (see ``Channel._connparams``).

The lease settings and the per-app key names come in as transport options from ``celery_base.build_config``.
Each app gets its own ``unacked*`` keys because the index is shared by every consumer of the database.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

from geminivideo.leases.renewal import LeaseRenewer, renewer_for

log = logging.getLogger(__name__)

TRANSPORT_PATH = "geminivideo.redis_transport:Transport"


class QoS(kombu_redis.QoS):
    """Ack emulation whose deliveries are leases, renewed while this channel holds them."""

    _renewer: LeaseRenewer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._abandoned: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        super().append(message, delivery_tag)
        interval_s = self.channel.lease_renew_interval
        if interval_s and (self._renewer is None or not self._renewer.is_running()):
            self._renewer = renewer_for(self, float(interval_s))

    def held_tags(self) -> list[str]:
        """Deliveries this channel still holds (not acknowledged, rejected or handed back)."""
        for _ in range(5):
            try:  # the consumer thread changes these while the renewer reads them
                return [t for t in list(self._delivered) if t not in self._dirty and t not in self._abandoned]
            except RuntimeError:
                continue
        return []

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        # Handed back (an attempt that lost its lease, a cold shutdown): never renew it again, even if Redis
        # cannot be reached now and the tag stays in this channel's books.
        self._abandoned.add(delivery_tag)
        super().reject(delivery_tag, requeue=requeue)
        self._abandoned.discard(delivery_tag)  # handed back: no longer among this channel's deliveries

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        self._abandoned.discard(delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

    #: seconds between two renewals of every delivery this channel holds (None: no leases, kombu's behaviour)
    lease_renew_interval: float | None = None

    from_transport_options: tuple[str, ...] = (  # type: ignore[assignment]  # kombu types it as a fixed tuple
        *kombu_redis.Channel.from_transport_options, "lease_renew_interval",
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


class Transport(kombu_redis.Transport):
    Channel = Channel
