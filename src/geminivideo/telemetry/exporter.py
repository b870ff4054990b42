"""A worker host's ``/metrics`` on WORKER_METRICS_PORT: the sum of every worker process on the host.

Prefork pool children write their counters to files in one folder per host (prometheus_client's
multiprocess mode). The exporter reads the whole folder on each scrape, so a child that ran a task and was
then killed or replaced still counts: its counter files stay. What must disappear with a process (tasks
running now, ``worker_up``) uses the ``live*`` gauge modes, whose files a reaper thread removes once their
process is gone; a child killed with SIGKILL never gets to clean up after itself.

Every worker on the host (render, preview, transcode…) shares the folder and tries to bind the port: the
first one serves, the others retry every few seconds, so the port comes back when the serving worker stops.
With METRICS_TOKEN set the endpoint requires it as a bearer token, as the API's ``/metrics`` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from geminivideo.config import Settings
from geminivideo.procs import pid_alive
from geminivideo.telemetry import metrics as metrics_module
from geminivideo.telemetry.auth import may_read_metrics, metrics_token

log = logging.getLogger(__name__)

REAP_INTERVAL_S = 5.0
_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def host_folder(settings: Settings) -> Path:
    """PROMETHEUS_MULTIPROC_DIR, else a folder under TEMP_DIR named after the port (one per host and port)."""
    if settings.prometheus_multiproc_dir is not None:
        return settings.prometheus_multiproc_dir
    return settings.temp_dir / "prometheus" / f"worker-metrics-{settings.worker_metrics_port}"


def render(folder: Path) -> bytes:
    """The folder's series, summed over every process that ever wrote there."""
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return generate_latest(registry)


    return True


def reap_dead_processes(folder: Path) -> list[int]:
    """Drop the live-gauge files of processes that no longer exist; return their pids."""
    dead = set()
    for entry in os.listdir(folder):
        match = _LIVE_FILE.match(entry)
        if match and not pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))
    return sorted(dead)


def _handler(folder: Path, token: str | None) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            if token is not None and not may_read_metrics(token, self.headers.get("Authorization"), None):
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Bearer")
                self.end_headers()
                return
            body = render(folder)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
            return

    return MetricsHandler


class HostExporter:
    """Started once in a worker's main process, before the pool forks (``worker_init``)."""

    def __init__(self, settings: Settings, worker_name: str) -> None:
        self.folder = host_folder(settings)
        self.address = settings.worker_metrics_address
        self.port = int(settings.worker_metrics_port or 0)
        self.worker_name = worker_name
        self._token = metrics_token(settings)
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        metrics_module.enable_multiprocess(self.folder)
        metrics_module.metrics().worker_up.labels(worker=self.worker_name).set(1)
        thread = threading.Thread(target=self._run, name="metrics-exporter", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        multiprocess.mark_process_dead(os.getpid(), str(self.folder))

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._server is None:
                self._try_serve()
            try:
                reap_dead_processes(self.folder)
            except OSError as exc:  # a folder wiped under us: the next round tries again
                log.warning("metrics folder %s unreadable: %s", self.folder, exc)
            self._stop.wait(REAP_INTERVAL_S)

    def _try_serve(self) -> None:
        try:
            server = ThreadingHTTPServer((self.address, self.port), _handler(self.folder, self._token))
        except OSError:
            return  # another worker on this host serves the port; retried while this worker lives
        server.daemon_threads = True
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info("worker metrics on http://%s:%d/metrics (folder %s)", self.address, self.port, self.folder)


_EXPORTER: list[HostExporter] = []


def start_host_exporter(settings: Settings, worker_name: str) -> HostExporter | None:
    """Start this worker process's exporter once, when WORKER_METRICS_PORT is set."""
    if settings.worker_metrics_port is None or _EXPORTER:
        return _EXPORTER[0] if _EXPORTER else None
    exporter = HostExporter(settings, worker_name)
    exporter.start()
    _EXPORTER.append(exporter)
    return exporter


def stop_host_exporter() -> None:
    while _EXPORTER:
        with contextlib.suppress(Exception):
            _EXPORTER.pop().stop()
