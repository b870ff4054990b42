"""A real Prometheus server for the telemetry tests, and one private deployment (Redis, SQLite, API, worker).

Prometheus is Debian's package; each test run starts its own on a free loopback port with its own
configuration and storage folder, scraping every second, and stops it by pid.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from geminivideo import procs
from geminivideo.db.migrate import upgrade
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*

TOKEN = "metrics-test-" + uuid.uuid4().hex  # a secret the log grep must never find


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus (scripts/setup.sh does)")
    return found


def scrape_config(targets: Mapping[str, str], token: str | None) -> dict[str, Any]:
    """One job per target (``api``, ``workers``), scraped every second with the bearer token."""
    jobs = []
    for job, address in targets.items():
        entry: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": [address]}]}
        if token:
            entry["authorization"] = {"type": "Bearer", "credentials": token}
        jobs.append(entry)
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "scrape_configs": jobs}


@dataclass
class Prometheus:
    proc: procs.ManagedProcess
    url: str

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def value(self, promql: str) -> float | None:
        found = self.query(promql)
        assert len(found) <= 1, f"{promql} returned several series: {found}"
        return found[0][1] if found else None

    def wait_value(self, promql: str, expected: float, timeout_s: float = 30) -> float:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last == expected:
                return last
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {last}, expected {expected} within {timeout_s:.0f} s")


@contextmanager
def running_prometheus(root: Path, targets: Mapping[str, str], token: str | None) -> Iterator[Prometheus]:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(targets, token), indent=2))  # JSON is YAML too
    port = procs.free_port()
    argv = [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    proc = procs.spawn("prometheus", argv, log_path=root / "prometheus.log")
    server = Prometheus(proc, f"http://127.0.0.1:{port}")
    try:
        procs.wait_until(lambda: _ready(server) or not proc.alive(), 60, what="prometheus ready")
        if not proc.alive():
            raise RuntimeError(f"prometheus exited at start:\n{proc.log_tail()}")
        yield server
    finally:
        proc.stop()


def _ready(server: Prometheus) -> bool:
    try:
        return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Deployment:
    """A private Redis and SQLite with the env every process of one test module gets."""

    root: Path
    env: dict[str, str]
    redis: procs.ManagedProcess
    logs: list[Path] = field(default_factory=list)

    def log(self, name: str) -> Path:
        path = self.root / "logs" / name
        self.logs.append(path)
        return path


@contextmanager
def deployment(harness: HarnessEnv, root: Path, **overrides: str) -> Iterator[Deployment]:
    redis_proc, redis_url = procs.start_redis(data_dir=root / "redis")
    try:
        db_url = f"sqlite:///{root / 'telemetry.db'}"
        upgrade(db_url)
        env = harness.process_env(REDIS_URL=redis_url, DATABASE_URL=db_url, METRICS_TOKEN=TOKEN, **overrides)
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
        yield Deployment(root, env, redis_proc)
    finally:
        redis_proc.stop()


def wait_job(api: str, task_id: str, timeout_s: float = 90, *, api_key: str | None = None) -> dict[str, Any]:
    """Poll the API until the job is final; return its state."""
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = {}
    headers = {"X-API-Key": api_key} if api_key else {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/api/jobs/{task_id}", headers=headers, timeout=10).json()
        if state.get("status") in ("completed", "failed", "cancelled"):
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {task_id} not final within {timeout_s:.0f} s: {state}")
