"""Per-host resource snapshots from every video worker, not only from whichever worker beat reaches.

The beat-driven ``monitor_resources_task`` runs on one arbitrary worker per period, so on a fleet most
hosts' ``system_resources:<host>`` keys would go stale. This worker bootstep publishes the same snapshot
from each worker's main process every MONITOR_INTERVAL_S in a daemon thread (a snapshot samples CPU for
half a second; the thread keeps that off the worker's event loop). RESOURCE_MONITOR_ON_WORKERS=false
turns it off.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

from geminivideo.config import get_settings
from geminivideo.telemetry.metrics import record_host_snapshot

log = logging.getLogger(__name__)


class ResourceMonitorStep(bootsteps.StartStopStep):
    """Start a snapshot thread when the worker starts; stop it on shutdown."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        settings = get_settings()
        if not settings.resource_monitor_on_workers:
            return
        self._thread = threading.Thread(
            target=self._run, args=(settings.monitor_interval_s,), name="resource-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, interval_s: float) -> None:
        from geminivideo.video.housekeeping import resources

        while not self._stop.is_set():
            try:
                record_host_snapshot(resources.collect_and_publish())  # also as Prometheus gauges
            except Exception:  # a monitoring hiccup must never take the worker down
                log.exception("resource snapshot failed")
            self._stop.wait(interval_s)
