"""Model inference, media speed and approval telemetry from real workers, the API and the CLI.

Given a private deployment (Redis, SQLite) whose API, video worker and ML worker run with tracing on (the SDK's
in-memory exporter dumping spans to a file) and the workers with their host metrics exporter,
when a spoken video is captioned (Whisper tiny.en), a video rendered, winners searched over HTTP (the embedding
model), and four proposed ad changes are decided (two with the ``geminivideo approvals`` CLI, one over HTTP, one
left pending) and the executor runs,
then there are ``whisper.transcribe`` and ``embeddings.encode`` spans; the caption's real-time factor is
Whisper's transcription time per second of audio (not the task's wall time); the render's speed is counted; and
the approval series say 1 pending, 2 approved and 1 rejected decisions (the CLI's counted like the API's),
1 executed and 1 blocked by a gate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from geminivideo import procs
from geminivideo.contracts import QueueName, TaskName
from tests.integration.telemetry.support import TOKEN, Deployment, deployment, wait_job
from tests.support import media, speech
from tests.support.env import TestEnv as HarnessEnv
from tests.support.env import applied

pytestmark = pytest.mark.timeout(420)


@dataclass
class Stack:
    deployment: Deployment
    api: str
    spans: Path
    worker_metrics: dict[str, str]  # app -> metrics URL
    sender: Celery
    queues: dict[str, str]  # what -> private queue


@pytest.fixture(scope="module")
def stack(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("telemetry-models")
    spans = root / "spans.jsonl"
    ports = {"video": procs.free_port(), "ml": procs.free_port()}
    overrides = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "GEMINIVIDEO_TEST_SPAN_FILE": str(spans),
                 "WHISPER_ALLOW_DOWNLOAD": "false", "API_AUTH": "off"}
    queues = {what: f"telemetry-{what}-{uuid.uuid4().hex[:6]}" for what in ("video", "ml")}
    with deployment(test_env, root, **overrides) as deployed:
        api_proc, api = procs.start_api(deployed.env, deployed.log("api.log"), ready_path="/health", require_ok=False)
        workers = []
        try:
            for app, extra in (("video", [str(QueueName.CAPTION), str(QueueName.RENDER)]), ("ml", [])):
                env = {**deployed.env, "WORKER_METRICS_PORT": str(ports[app]),
                       "PROMETHEUS_MULTIPROC_DIR": str(root / f"metrics-{app}")}
                workers.append(procs.start_worker(app, queues=[queues[app], *extra], concurrency=1, env=env,
                                                  hostname=f"models-{app}-{uuid.uuid4().hex[:6]}@localhost",
                                                  log_path=deployed.log(f"worker-{app}.log")))
            sender = Celery("telemetry-models", broker=deployed.env["REDIS_URL"], set_as_current=False)
            urls = {app: f"http://127.0.0.1:{port}/metrics" for app, port in ports.items()}
            yield Stack(deployed, api, spans, urls, sender, queues)
        finally:
            for worker in workers:
                worker.stop()
            api_proc.stop()


# ─── helpers ──────────────────────────────────────────────────────────────────────────────────────
def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a metrics page, by (name, labels)."""
    text = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(url: str, name: str, **labels: str) -> float | None:
    return samples(url).get((name, frozenset(labels.items())))


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {timeout_s:.0f} s")


def spans_named(path: Path, name: str) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [span for span in map(json.loads, lines) if span["name"] == name]


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geminivideo.cli", *args], env=stack.deployment.env,
                          capture_output=True, text=True, timeout=120)


# ─── models and media ─────────────────────────────────────────────────────────────────────────────
def test_caption_spans_whisper_and_its_real_time_factor_is_transcription_time(
    stack: Stack, test_env: HarnessEnv
) -> None:
    video = speech.speech_video(speech.ENGLISH_SENTENCES[:2], test_env.media_dir / f"rtf-{uuid.uuid4().hex[:6]}.mp4")
    sent = stack.sender.send_task(str(TaskName.CAPTION), args=[str(video)], kwargs={"model": "tiny.en"},
                                  queue=stack.queues["video"])
    state = wait_job(stack.api, sent.id, timeout_s=240)
    assert state["status"] == "completed", state
    result = state["result"]
    url = stack.worker_metrics["video"]
    model = {"model": result["model"]}
    count = wait_for("the caption's RTF sample",
                     lambda: sample(url, "geminivideo_caption_real_time_factor_count", **model))
    assert count == 1
    rtf = sample(url, "geminivideo_caption_real_time_factor_sum", **model)
    assert rtf == pytest.approx(result["transcribe_s"] / result["duration"], rel=0.01, abs=1e-3)
    # The task also probed, extracted audio and maybe loaded the model: its wall time is not the factor.
    assert result["processing_s"] > result["transcribe_s"]
    (whisper,) = wait_for("a whisper.transcribe span", lambda: spans_named(stack.spans, "whisper.transcribe"))
    (run,) = [s for s in spans_named(stack.spans, "run/caption_task") if s["trace_id"] == whisper["trace_id"]]
    assert whisper["service"] == "geminivideo-worker"
    assert run["start_ns"] <= whisper["start_ns"] <= whisper["end_ns"] <= run["end_ns"]
    assert (whisper["end_ns"] - whisper["start_ns"]) / 1e9 == pytest.approx(result["transcribe_s"], abs=0.25)


def test_a_render_counts_its_speed(stack: Stack, test_env: HarnessEnv) -> None:
    clip = media.make_video(test_env.media_dir / f"speed-{uuid.uuid4().hex[:6]}.mp4", duration_s=2, size=(320, 240))
    job = {"scenes": [{"video_path": str(clip)}], "output_format": {"width": 320, "height": 240, "fps": 25}}
    sent = stack.sender.send_task(str(TaskName.RENDER_VIDEO), args=[job], queue=stack.queues["video"])
    state = wait_job(stack.api, sent.id, timeout_s=180)
    assert state["status"] == "completed", state
    url = stack.worker_metrics["video"]
    label = {"task": str(TaskName.RENDER_VIDEO)}
    assert wait_for("the render's speed", lambda: sample(url, "geminivideo_media_speed_ratio_count", **label)) == 1
    speed = sample(url, "geminivideo_media_speed_ratio_sum", **label)
    assert speed is not None and 0 < speed < state["result"]["duration"] / 0.01  # output s per wall s, not 0


def test_winner_search_spans_the_embedding_model(stack: Stack) -> None:
    response = httpx.get(f"{stack.api}/api/ml/rag/search-winners", params={"q": "UGC testimonial, fast cuts"},
                         timeout=120)
    assert response.status_code == 200, response.text
    (encode,) = wait_for("an embeddings.encode span", lambda: spans_named(stack.spans, "embeddings.encode"))
    assert encode["service"] == "geminivideo-api" and encode["end_ns"] > encode["start_ns"]
    (request,) = [s for s in spans_named(stack.spans, "GET /api/ml/rag/search-winners")]
    assert encode["trace_id"] == request["trace_id"]


# ─── approvals ────────────────────────────────────────────────────────────────────────────────────
def propose(stack: Stack) -> list[int]:
    """Four ads with a $100 budget and a proposal each: pause, a 100 % budget rise (a gate blocks it), two pauses."""
    from geminivideo.db.models import Ad, ChangeType
    from geminivideo.db.session import session_scope
    from geminivideo.ml.decisions import approvals
    from geminivideo.ml.decisions.datagen import ensure_tenant

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    ads = [f"{tenant}-ad{i}" for i in range(4)]
    with applied({"DATABASE_URL": stack.deployment.env["DATABASE_URL"]}):
        with session_scope() as session:
            ensure_tenant(session, tenant)
            for ad_id in ads:
                session.add(Ad(id=ad_id, tenant_id=tenant, campaign_id=f"{tenant}-c", name=ad_id, status="active",
                               daily_budget=100.0, launched_at=datetime.now(UTC) - timedelta(days=10)))
        kinds = [(ChangeType.PAUSE, None), (ChangeType.BUDGET, 200.0), (ChangeType.PAUSE, None),
                 (ChangeType.PAUSE, None)]
        views = [approvals.propose_change(ad, kind, value, reason="telemetry test")
                 for ad, (kind, value) in zip(ads, kinds, strict=True)]
    return [view.id for view in views if view is not None]


def test_approvals_decided_by_cli_and_api_count_alike_and_executions_count_by_outcome(stack: Stack) -> None:
    paused, raised, rejected, _pending = propose(stack)
    decided = cli(stack, "approvals", "approve", str(paused), "--by", "cli-operator")
    assert decided.returncode == 0, decided.stdout + decided.stderr
    decided = cli(stack, "approvals", "reject", str(rejected), "--by", "cli-operator")
    assert decided.returncode == 0, decided.stdout + decided.stderr
    response = httpx.post(f"{stack.api}/api/ml/approvals/{raised}/approve", json={"note": "go"}, timeout=30)
    assert response.status_code == 200, response.text

    api_metrics = f"{stack.api}/metrics"
    decisions = {d: sample(api_metrics, "geminivideo_approval_decisions_total", decision=d)
                 for d in ("approved", "rejected")}
    assert decisions == {"approved": 2, "rejected": 1}

    stack.sender.send_task(str(TaskName.EXECUTE_APPROVED_CHANGES), queue=stack.queues["ml"])
    url = stack.worker_metrics["ml"]
    wait_for("the executor's outcomes", lambda: sample(url, "geminivideo_approval_executions_total",
                                                       outcome="blocked"), timeout_s=120)
    assert sample(url, "geminivideo_approval_executions_total", outcome="executed") == 1
    assert sample(url, "geminivideo_approval_executions_total", outcome="blocked") == 1
    states = {s: sample(api_metrics, "geminivideo_approvals", status=s)
              for s in ("pending_approval", "approved", "rejected", "executed", "blocked")}
    assert states == {"pending_approval": 1, "approved": 0, "rejected": 1, "executed": 1, "blocked": 1}
    # Decisions stay counted after execution moved the rows on.
    assert sample(api_metrics, "geminivideo_approval_decisions_total", decision="approved") == 2
