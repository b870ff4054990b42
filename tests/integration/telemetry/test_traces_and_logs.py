"""One HTTP job submission is one trace, and the API's and the worker's JSON log lines carry its id.

Given a private deployment whose API and prefork worker run with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set)
and the OpenTelemetry SDK's in-memory exporter dumping each finished span to a file (GEMINIVIDEO_TEST_SPAN_FILE),
and LOG_FORMAT=json,
when a transcode is submitted over HTTP,
then the spans of the API request (without the caller's address or user agent), the message's queue wait,
the task and its FFmpeg run share one trace id,
the API's request line (with our X-Request-ID) and the worker's lines for the task carry that trace id,
and no log line anywhere holds a secret, the caller's IP address or its user agent.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from geminivideo import procs
from geminivideo.contracts import QueueName
from geminivideo.ml.webhooks.signature import v3_signature
from tests.integration.telemetry.support import TOKEN, Deployment, deployment, wait_job
from tests.support import leaks, media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.timeout(240)

CALLER_IP = "203.0.113.77"
CALLER_AGENT = "GV-Secret-Agent/7.7 (telemetry test)"
leaks.register_agent(CALLER_AGENT)  # the session's leak scan looks for it in every log, not only this test's
# The caller's address comes through a trusted X-Forwarded-For, so it is not loopback: the API needs a real key
# (API_AUTH=off serves loopback callers only).
API_KEY = "telemetry-key-" + uuid.uuid4().hex


@dataclass
class Traced:
    deployment: Deployment
    api: str
    spans: Path
    video: Path


@pytest.fixture(scope="module")
def traced(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    root = tmp_path_factory.mktemp("telemetry-traces")
    spans = root / "spans.jsonl"
    overrides = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "GEMINIVIDEO_TEST_SPAN_FILE": str(spans),
                 "LOG_FORMAT": "json", "WORKER_METRICS_PORT": str(procs.free_port()),
                 "PROMETHEUS_MULTIPROC_DIR": str(root / "metrics")}
    with deployment(test_env, root, **overrides) as deployed:
        api_env = {k: v for k, v in deployed.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        api_env.update(API_AUTH="on", API_KEYS=f"telemetry={API_KEY}")
        api_proc, api = procs.start_api(api_env, deployed.log("api.log"), ready_path="/health", require_ok=False)
        worker = procs.start_worker("video", queues=[str(QueueName.TRANSCODE)], concurrency=1, env=deployed.env,
                                    hostname=f"traced-{uuid.uuid4().hex[:6]}@localhost",
                                    log_path=deployed.log("worker.log"))
        video = media.make_video(test_env.media_dir / f"traced-{uuid.uuid4().hex[:6]}.mp4", duration_s=1,
                                 size=(160, 120), audio=False)
        try:
            yield Traced(deployed, api, spans, video)
        finally:
            worker.stop()
            api_proc.stop()


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def wait_spans(path: Path, predicate: Any, timeout_s: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = read_spans(path)
        if predicate(found):
            return found
        time.sleep(0.3)
    raise AssertionError(f"spans never matched; have: {[s['name'] for s in read_spans(path)]}")


def test_one_submission_is_one_trace_across_api_queue_task_and_ffmpeg(traced: Traced) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    body = {"input_path": str(traced.video), "output_format": {"codec": "h264", "container": "mp4"}}
    headers = {"X-Request-ID": request_id, "User-Agent": CALLER_AGENT, "X-Forwarded-For": CALLER_IP,
               "X-API-Key": API_KEY}
    response = httpx.post(f"{traced.api}/api/video/transcode", json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == request_id
    task_id = response.json()["task_id"]
    assert wait_job(traced.api, task_id, api_key=API_KEY)["status"] == "completed"

    spans = wait_spans(traced.spans, lambda found: any(s["name"] == "run/transcode_task" for s in found)
                       and any(s["name"] == "POST /api/video/transcode" for s in found))
    (server,) = [s for s in spans if s["name"] == "POST /api/video/transcode"]
    trace = {s["name"]: s for s in spans if s["trace_id"] == server["trace_id"]}
    assert server["service"] == "geminivideo-api" and server["parent_id"] is None
    for name in ("apply_async/transcode_task", "queue_wait/transcode_task", "run/transcode_task", "ffmpeg"):
        assert name in trace, f"{name} missing from the trace; it has {sorted(trace)}"
    run, wait, ffmpeg = trace["run/transcode_task"], trace["queue_wait/transcode_task"], trace["ffmpeg"]
    assert run["service"] == wait["service"] == ffmpeg["service"] == "geminivideo-worker"
    assert run["parent_id"] == wait["parent_id"] == trace["apply_async/transcode_task"]["span_id"]
    assert wait["end_ns"] <= run["start_ns"] + 50_000_000 and wait["start_ns"] >= server["start_ns"]
    by_id = {s["span_id"]: s for s in trace.values()}
    ancestors, parent = [], ffmpeg["parent_id"]
    while parent in by_id:
        ancestors.append(by_id[parent]["name"])
        parent = by_id[parent]["parent_id"]
    assert "run/transcode_task" in ancestors
    assert run["start_ns"] <= ffmpeg["start_ns"] <= ffmpeg["end_ns"] <= run["end_ns"]
    exported = traced.spans.read_text()
    assert not {"user_agent.original", "http.user_agent", "client.address"} & set(server["attributes"])
    for needle in (CALLER_IP, CALLER_AGENT, "GV-Secret-Agent"):  # personal data stays out of traces as out of logs
        assert needle not in exported, f"{needle!r} exported in a span"
    whole = [s for s in spans if s["trace_id"] == server["trace_id"]]
    for service in ("geminivideo-api", "geminivideo-worker"):  # both write the job record; both use Redis
        systems = {s["attributes"].get("db.system") for s in whole if s["service"] == service}
        assert {"sqlite", "redis"} <= systems, f"{service}: SQL and Redis spans expected, got {systems}"

    api_lines = [line for line in json_lines(traced.deployment.root / "logs" / "api.log")
                 if line.get("request_id") == request_id]
    assert api_lines and all(line.get("trace_id") == server["trace_id"] for line in api_lines), api_lines
    worker_lines = [line for line in json_lines(traced.deployment.root / "logs" / "worker.log")
                    if line.get("task_id") == task_id]
    assert worker_lines, "no worker log line names the task"
    assert all(line.get("trace_id") == server["trace_id"] for line in worker_lines), worker_lines
    assert all(line["task_name"] == "transcode_task" and line["job_id"] == task_id and line["attempt"] == 1
               for line in worker_lines)
    assert any("succeeded in" in line["message"] for line in worker_lines)
    assert not any("output_path" in line["message"] for line in worker_lines), "the task's result was logged"


def test_no_log_line_holds_a_secret_an_ip_address_or_a_user_agent(traced: Traced, test_env: HarnessEnv) -> None:
    secret = test_env.values["HUBSPOT_CLIENT_SECRET"]
    headers = {"User-Agent": CALLER_AGENT, "X-Forwarded-For": CALLER_IP, "Authorization": f"Bearer {TOKEN}",
               "X-API-Key": API_KEY}
    with httpx.Client(base_url=traced.api, headers=headers, timeout=10) as client:
        event = {"dealId": f"d-{uuid.uuid4().hex[:8]}", "stageTo": "closedwon", "dealValue": 1000}
        raw = json.dumps(event).encode()
        url = f"{traced.api}/api/webhooks/hubspot"
        stamp = str(int(time.time() * 1000))
        signed = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                  "X-HubSpot-Signature-v3": v3_signature(secret, "POST", url, raw, stamp)}
        assert client.post("/api/webhooks/hubspot", content=raw, headers=signed).status_code == 200
        wrong = {**signed, "X-HubSpot-Signature-v3": v3_signature("not-" + secret, "POST", url, raw, stamp)}
        assert client.post("/api/webhooks/hubspot", content=raw, headers=wrong).status_code == 401
        click = {"ad_id": "ad-telemetry", "ip_address": CALLER_IP, "user_agent": CALLER_AGENT}
        assert client.post("/api/ml/attribution/track-click", json=click).status_code in (200, 201)
        assert client.get("/metrics").status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer " + secret}).status_code == 401

    logs = traced.deployment.logs
    assert logs and all(path.exists() for path in logs)
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "POST /api/webhooks/hubspot 200" in text  # the request lines are there, only scrubbed
    for needle in (secret, TOKEN, CALLER_IP, CALLER_AGENT, "GV-Secret-Agent"):
        assert needle not in text, f"{needle!r} found in the logs"


def test_a_beat_logs_json_lines_too(traced: Traced) -> None:
    argv = [sys.executable, "-m", "celery", "-A", procs.WORKER_APPS["video"], "beat", "-l", "INFO",
            "-s", str(traced.deployment.root / "beat-schedule")]
    log = traced.deployment.log("beat.log")
    beat = procs.spawn("beat", argv, env=traced.deployment.env, log_path=log)
    try:
        procs.wait_until(lambda: "Acquired lock" in log.read_text(errors="replace") if log.exists() else False, 60,
                         what="the beat to take its lock")
    finally:
        beat.stop()
    lines = json_lines(log)
    assert any(line["logger"] == "celery.beat" and "Acquired lock" in line["message"] for line in lines), lines
