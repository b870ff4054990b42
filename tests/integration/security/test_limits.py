"""Abuse limits for real: token buckets in the session's Redis (429 with Retry-After, then recovery),
Idempotency-Key on job submission, request body caps, the cap on open event streams, and 100 parallel
``/api/workers`` calls that leave webhook ingest answering as fast as before (a real uvicorn process)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from geminivideo import procs
from geminivideo.api.app import create_app
from geminivideo.api.jobs import WORKERS_FRESH_S
from geminivideo.db.migrate import upgrade
from geminivideo.db.models import VideoJob
from geminivideo.db.session import session_scope
from tests.integration.webhooks.support import WEBHOOK_PATH, signed_v3
from tests.support import env as support_env
from tests.support.env import applied, create_test_key
from tests.support.leaks import TEST_USER_AGENT

LOOPBACK = ("127.0.0.1", 50000)
INSPECT_TIMEOUT_S = 4
STORM_CALLS = 100
ROUNDS = 5  # of each, quiet and storm, alternating
ROUND_WEBHOOKS = 20
ADS = [{"ad_id": "a", "impressions": 1000, "clicks": 30, "spend": 10, "age_hours": 100}, {"ad_id": "b"}]


@pytest.fixture
def keyed_api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The in-process app with authentication on, a fresh database and one key with every non-admin scope."""
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    upgrade(url)
    with applied({"DATABASE_URL": url, "API_AUTH": "on", "API_KEYS": "", "RATE_LIMIT_ML_BURST": "3",
                  "RATE_LIMIT_ML_PER_MINUTE": "60", "MAX_REQUEST_BODY_BYTES": "65536"}):
        token = create_test_key(f"limits-{uuid.uuid4().hex[:8]}", ["ads:read", "jobs:write", "jobs:read"])
        with TestClient(create_app(), client=LOOPBACK) as client:
            yield client, {"X-API-Key": token}


def test_rate_limit_answers_429_with_retry_after_and_recovers(keyed_api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = keyed_api
    body = {"ads": ADS, "seed": 1}
    answers = [client.post("/api/ml/battle-hardened/select", json=body, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429], [a.text for a in answers]
    retry_after = int(answers[-1].headers["retry-after"])
    assert 1 <= retry_after <= 2
    time.sleep(retry_after)
    assert client.post("/api/ml/battle-hardened/select", json=body, headers=headers).status_code == 200


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(
    keyed_api: tuple[TestClient, dict[str, str]], test_env: support_env.TestEnv
) -> None:
    client, headers = keyed_api
    # A path that does not exist: should a worker ever take the job, it fails at once.
    job = {"video_path": str(test_env.media_dir / f"missing-{uuid.uuid4().hex}.mp4"), "num_frames": 2}
    once = {**headers, "Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
    first = client.post("/api/video/preview", json=job, headers=once)
    again = client.post("/api/video/preview", content=json.dumps(job, indent=2), headers={
        **once, "content-type": "application/json"})
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["task_id"] == again.json()["task_id"]
    different = client.post("/api/video/preview", json={**job, "num_frames": 3}, headers=once)
    assert different.status_code == 422 and "different request body" in different.text
    plain = client.post("/api/video/preview", json=job, headers=headers)
    assert plain.json()["task_id"] != first.json()["task_id"]
    with session_scope() as session:
        assert session.get(VideoJob, first.json()["task_id"]) is not None


def test_request_bodies_over_the_cap_are_413_declared_or_streamed(
    keyed_api: tuple[TestClient, dict[str, str]]
) -> None:
    client, headers = keyed_api
    big = json.dumps({"ads": ADS, "padding": "x" * 70_000}).encode()
    declared = client.post("/api/ml/battle-hardened/select", content=big, headers={
        **headers, "content-type": "application/json"})
    assert declared.status_code == 413 and "MAX_REQUEST_BODY_BYTES" in declared.text

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    streamed = client.post("/api/ml/battle-hardened/select", content=chunks(), headers={
        **headers, "content-type": "application/json"})
    assert streamed.status_code == 413
    unauthenticated = client.put("/api/ml/fatigue/thresholds/t", content=big)
    assert unauthenticated.status_code == 413  # the cap comes before anything reads the body


@pytest.fixture
def served_api(test_env: support_env.TestEnv, tmp_path: Path) -> Iterator[str]:
    """uvicorn on loopback with its own broker database (so nothing it enqueues reaches another test)."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    upgrade(url)
    redis_url = test_env.redis_url.rsplit("/", 1)[0] + "/11"
    env = test_env.process_env(DATABASE_URL=url, REDIS_URL=redis_url, SSE_MAX_STREAMS_PER_KEY="2")
    proc, base = procs.start_api(env, tmp_path / "api.log")
    try:
        yield base
    finally:
        proc.stop()


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def _webhook_latencies(http: httpx.AsyncClient, base: str, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        body = json.dumps({"dealId": f"d-{uuid.uuid4().hex[:10]}", "stageTo": "appointmentscheduled"}).encode()
        started = time.perf_counter()
        reply = await http.post(base + WEBHOOK_PATH, content=body, headers=signed_v3(base + WEBHOOK_PATH, body))
        latencies.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text
    return latencies


async def _storm_round(http: httpx.AsyncClient, base: str) -> tuple[list[float], list[int], bool]:
    """Webhook latencies while 100 ``/api/workers`` calls wait out one inspection (no worker answers on this
    broker), their statuses, and whether the storm was still in flight when the last webhook was answered."""
    # Fresh connections for every storm: uvicorn closes idle ones after 5 s, and a pooled one reused just as
    # the server closes it is a ReadError that says nothing about the API.
    limits = httpx.Limits(max_connections=STORM_CALLS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers={"User-Agent": TEST_USER_AGENT}) as storm_http:
        return await _storm(storm_http, http, base)


async def _storm(storm_http: httpx.AsyncClient, http: httpx.AsyncClient, base: str,
                 ) -> tuple[list[float], list[int], bool]:
    storm = [asyncio.create_task(storm_http.get(f"{base}/api/workers", params={"timeout_s": INSPECT_TIMEOUT_S}))
             for _ in range(STORM_CALLS)]
    # Reading and routing 100 requests at once is a CPU burst of a few hundred ms on a loaded 2-core host, the
    # same for any 100 requests; what must not happen is ingest waiting for the held inspections. Two unmeasured
    # webhooks sent after the storm are answered only once the loop has taken in the storm's requests.
    await asyncio.sleep(0.2)
    await _webhook_latencies(http, base, 2)
    latencies = await _webhook_latencies(http, base, ROUND_WEBHOOKS)
    during = not all(call.done() for call in storm)
    statuses = [r.status_code for r in await asyncio.gather(*storm)]
    return latencies, statuses, during


async def _quiet_and_storm_rounds(base: str) -> tuple[list[list[float]], list[list[float]], list[int], list[bool]]:
    """Quiet and storm rounds alternating in one run, so both see the same load from the rest of the host."""
    quiet: list[list[float]] = []
    stormy: list[list[float]] = []
    statuses: list[int] = []
    during: list[bool] = []
    async with httpx.AsyncClient(timeout=60, headers={"User-Agent": TEST_USER_AGENT}) as http:
        await _webhook_latencies(http, base, 5)  # warm-up: connections, first imports, SQLite pages
        for _ in range(ROUNDS):
            quiet.append(await _webhook_latencies(http, base, ROUND_WEBHOOKS))
            latencies, round_statuses, in_flight = await _storm_round(http, base)
            stormy.append(latencies)
            statuses += round_statuses
            during.append(in_flight)
            await asyncio.sleep(WORKERS_FRESH_S + 0.1)  # the next storm must start a new inspection, not hit the cache
    return quiet, stormy, statuses, during


def test_parallel_worker_inspections_do_not_stall_webhook_ingest(served_api: str) -> None:
    quiet, stormy, statuses, during = asyncio.run(_quiet_and_storm_rounds(served_api))
    assert statuses == [200] * STORM_CALLS * ROUNDS
    assert all(during), "a storm ended before its webhooks were answered: the round measured nothing"
    # Held threads would make every storm round's webhooks wait a whole inspection (4 s). The slowest quiet
    # round sets the bar; the storm's p99 is its median round's, so one scheduling hiccup of a loaded 2-core
    # host (a single 400 ms answer in 100) does not decide the verdict while a stall in most rounds does.
    quiet_p99 = max(_p99(r) for r in quiet)
    limit = quiet_p99 * 1.25 + 0.025
    storm_p99 = statistics.median(_p99(r) for r in stormy)
    report = (f"webhook p99 {storm_p99 * 1000:.0f} ms under the /api/workers storm (rounds "
              f"{[round(_p99(r) * 1000) for r in stormy]} ms) vs quiet rounds "
              f"{[round(_p99(r) * 1000) for r in quiet]} ms (limit {limit * 1000:.0f} ms)")
    print(report)
    assert storm_p99 <= limit, report


def test_open_event_streams_are_capped_per_key(served_api: str, test_env: support_env.TestEnv) -> None:
    with httpx.Client(base_url=served_api, timeout=30) as http:
        job = {"video_path": str(test_env.media_dir / f"missing-{uuid.uuid4().hex}.mp4")}
        submitted = http.post("/api/video/preview", json=job)
        assert submitted.status_code == 202, submitted.text
        # A queued job on a broker no worker reads never finishes: its streams stay open.
        task_id = submitted.json()["task_id"]
        with http.stream("GET", f"/api/jobs/{task_id}/events") as one, \
                http.stream("GET", f"/api/jobs/{task_id}/events") as two:
            assert one.status_code == two.status_code == 200
            third = http.get(f"/api/jobs/{task_id}/events")
            assert third.status_code == 429 and "SSE_MAX_STREAMS_PER_KEY" in third.text
        deadline = time.monotonic() + 10  # closed streams give their slots back
        while http.get(f"/api/jobs/{task_id}/events", params={"timeout_s": 0.5}).status_code == 429:
            assert time.monotonic() < deadline, "stream slots were not released after the clients left"
            time.sleep(0.2)
