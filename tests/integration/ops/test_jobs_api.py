"""The jobs API on a real uvicorn, a real video worker and a real Redis: submit, stream, inspect, cancel.

Given an isolated deployment (own Redis database and SQLite), when jobs are submitted over HTTP, then they
run on the worker, their progress streams as Server-Sent Events, and cancel kills the running FFmpeg.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from geminivideo import procs
from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER
from tests.integration.ops.support import make_video, processes_mentioning, start_api, wait_for

if TYPE_CHECKING:
    from tests.support.env import TestEnv


def read_events(url: str, *, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Consume an SSE stream to its end; return the (event, data) pairs."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream("GET", url, timeout=timeout_s) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                current["event"] = line.removeprefix("event: ")
            elif line.startswith("data: "):
                current["data"] = json.loads(line.removeprefix("data: "))
            elif line == "" and current:
                events.append(current)
                current = {}
    return events


def test_bad_payloads_are_422_naming_the_field(api: str) -> None:
    cases = [
        ("render", {"scenes": []}, "scenes"),
        ("render", {"scenes": [{"video_path": "/x.mp4", "start_time": 5, "end_time": 2}]}, "scenes"),
        ("transcode", {"input_path": "/x.mp4", "output_format": {"codec": "mpeg2"}}, "codec"),
        ("preview", {"video_path": "/x.mp4", "num_frames": 0}, "num_frames"),
        ("caption", {"video_path": "/x.mp4", "colour": "red"}, "colour"),
    ]
    for kind, body, field in cases:
        response = httpx.post(f"{api}/api/video/{kind}", json=body, timeout=10)
        assert response.status_code == 422, (kind, response.text)
        locations = [".".join(map(str, err["loc"])) for err in response.json()["detail"]]
        assert any(field in loc for loc in locations), (kind, locations)


def test_unknown_job_ids_are_404(api: str) -> None:
    for method, path in [("GET", ""), ("GET", "/events"), ("DELETE", "")]:
        response = httpx.request(method, f"{api}/api/jobs/no-such-job{path}", timeout=10)
        assert response.status_code == 404, (method, path, response.text)
        assert "no-such-job" in response.json()["detail"]


def test_openapi_documents_every_endpoint(api: str) -> None:
    paths = httpx.get(f"{api}/openapi.json", timeout=10).json()["paths"]
    for path in ["/api/video/render", "/api/video/preview", "/api/video/transcode", "/api/video/caption",
                 "/api/jobs/{task_id}", "/api/jobs/{task_id}/events", "/api/queues", "/api/workers", "/health"]:
        assert path in paths
    assert httpx.get(f"{api}/docs", timeout=10).status_code == 200


def test_health_reports_every_dependency(api: str) -> None:
    body = httpx.get(f"{api}/health", timeout=10).json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"redis", "database", "broker"}
    assert all(check["ok"] for check in body["checks"].values()), body
    assert "schema at" in body["checks"]["database"]["detail"]


def test_workers_and_queues_are_listed(api: str, ops_video_worker: procs.ManagedProcess) -> None:
    workers = httpx.get(f"{api}/api/workers", timeout=20).json()
    mine = [w for w in workers if w["name"] == ops_video_worker.extra["hostname"]]
    assert mine, workers
    assert mine[0]["app"] == "video"
    hostname = str(ops_video_worker.extra["hostname"])  # then its own direct queue (per-host cleanup)
    assert mine[0]["queues"] == [*map(str, VIDEO_QUEUE_ORDER), f"{hostname}.dq2"]
    assert mine[0]["concurrency"] == 1

    queues = httpx.get(f"{api}/api/queues", timeout=10).json()
    assert [q["name"] for q in queues] == [str(q) for q in (*VIDEO_QUEUE_ORDER, *ML_QUEUE_ORDER)]
    assert all(isinstance(q["messages"], int) for q in queues)


def test_a_transcode_job_runs_and_streams_progress(
    api: str, ops_video_worker: procs.ManagedProcess, sample_video: Path
) -> None:
    body = {"input_path": str(sample_video), "output_format": {"codec": "vp9", "container": "webm"}}
    submitted = httpx.post(f"{api}/api/video/transcode", json=body, timeout=10)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["status"] == "queued" and job["status_url"].endswith(f"/api/jobs/{job['task_id']}")

    events = read_events(job["events_url"])
    statuses = [e["event"] for e in events]
    assert statuses[-1] == "completed", events
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100

    state = httpx.get(job["status_url"], timeout=10).json()
    assert state["status"] == "completed" and state["celery_state"] == "SUCCESS"
    output = Path(state["result"]["output_path"])
    assert output.exists() and output.suffix == ".webm" and output.stat().st_size > 0

    listed = httpx.get(f"{api}/api/jobs", params={"kind": "transcode"}, timeout=10).json()
    assert any(row["task_id"] == job["task_id"] and row["status"] == "completed" for row in listed)


def _run_over_http(api: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a job, follow its event stream to the end, and return its final state (asserting it completed)."""
    submitted = httpx.post(f"{api}/api/video/{kind}", json=body, timeout=10)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["kind"] == kind and job["status"] == "queued"
    events = read_events(job["events_url"], timeout_s=180)
    assert events[-1]["event"] == "completed", events
    state = httpx.get(job["status_url"], timeout=10).json()
    assert state["status"] == "completed" and state["celery_state"] == "SUCCESS", state
    return dict(state["result"])


def test_a_render_job_runs_over_http(api: str, ops_video_worker: procs.ManagedProcess, sample_video: Path) -> None:
    body = {"scenes": [{"video_path": str(sample_video)}, {"video_path": str(sample_video), "end_time": 1}],
            "output_format": {"width": 160, "height": 120, "fps": 25}}
    result = _run_over_http(api, "render", body)
    output = Path(result["output_path"])
    assert output.is_file() and result["file_size"] == output.stat().st_size > 0
    assert (result["width"], result["height"]) == (160, 120) and 2 < result["duration"] < 3  # 2 s + 1 s - a fade


def test_a_preview_job_runs_over_http(api: str, ops_video_worker: procs.ManagedProcess, sample_video: Path) -> None:
    result = _run_over_http(api, "preview", {"video_path": str(sample_video), "num_frames": 3, "width": 64})
    frames = [Path(p) for p in result["preview_paths"]]
    assert result["num_frames"] == len(frames) == 3 and all(f.is_file() and f.stat().st_size > 0 for f in frames)
    assert result["frame_width"] == 64


def test_a_caption_job_runs_over_http(api: str, ops_video_worker: procs.ManagedProcess, spoken_video: Path) -> None:
    body = {"video_path": str(spoken_video), "model": "tiny.en", "formats": ["srt", "vtt"]}
    result = _run_over_http(api, "caption", body)
    srt_text = Path(result["srt_path"]).read_text(encoding="utf-8")
    assert result["language"] == "en" and "-->" in srt_text and "sale" in srt_text.lower()
    assert Path(result["vtt_path"]).read_text(encoding="utf-8").startswith("WEBVTT")


@pytest.mark.slow
def test_cancel_kills_the_running_ffmpeg_and_a_queued_job(
    api: str, ops_video_worker: procs.ManagedProcess, test_env: TestEnv, ops_env: dict[str, str]
) -> None:
    # Given a long transcode running on the only worker slot and a second job waiting behind it
    long_input = make_video(test_env.media_dir / "ops-long.mp4", seconds=60, size="640x360")
    slow = {"input_path": str(long_input), "output_format": {"codec": "h265", "preset": "veryslow"}}
    running = httpx.post(f"{api}/api/video/transcode", json=slow, timeout=10).json()
    queued = httpx.post(f"{api}/api/video/transcode", json=slow, timeout=10).json()

    def status_of(job: dict[str, Any]) -> str:
        return str(httpx.get(job["status_url"], timeout=10).json()["status"])

    wait_for(lambda: status_of(running) == "processing", 60, "the long transcode to report processing")
    assert processes_mentioning(str(long_input)), "FFmpeg should be running on the long input"
    queue = {q["name"]: q["messages"] for q in httpx.get(f"{api}/api/queues", timeout=10).json()}
    assert queue["transcode_queue"] >= 1

    # When both are cancelled
    for job in (queued, running):
        response = httpx.delete(job["status_url"], timeout=10)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelled"

    # Then the stream ends cancelled, FFmpeg is gone, no partial output is left, and the worker carries on
    assert read_events(running["events_url"], timeout_s=30)[-1]["event"] == "cancelled"
    wait_for(lambda: not processes_mentioning(str(long_input)), 30, "FFmpeg to exit after cancel")
    wait_for(lambda: status_of(running) == "cancelled" and status_of(queued) == "cancelled", 10,
             "both jobs recorded cancelled")
    leftovers = [p for p in Path(test_env.values["RENDER_DIR"]).rglob("*") if "ops-long" in p.name]
    assert leftovers == []
    assert httpx.delete(running["status_url"], timeout=10).json()["status"] == "cancelled"  # idempotent
    assert procs.ping_worker("video", str(ops_video_worker.extra["hostname"]), ops_env)


def test_api_key_and_unreachable_dependencies(ops_env: dict[str, str], ops_logs: Path) -> None:
    # Given an API whose Redis does not answer and that requires an API key
    dead = f"redis://127.0.0.1:{procs.free_port()}/0"
    env = {**ops_env, "REDIS_URL": dead, "API_KEYS": "k1,k2", "API_AUTH": "on"}
    proc, base = start_api(env, ops_logs / "api-degraded.log", wait_healthy=False)
    try:
        health = httpx.get(f"{base}/health", timeout=30)
        assert health.status_code == 503
        checks = health.json()["checks"]
        assert not checks["redis"]["ok"] and not checks["broker"]["ok"] and checks["database"]["ok"]
        assert httpx.get(f"{base}/api/queues", timeout=10).status_code == 401
        assert httpx.get(f"{base}/api/queues", headers={"X-API-Key": "wrong"}, timeout=10).status_code == 401
        assert httpx.get(f"{base}/api/queues", headers={"X-API-Key": "k2"}, timeout=30).status_code == 503
    finally:
        proc.stop()
