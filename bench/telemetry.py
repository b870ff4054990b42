"""What metrics and tracing cost: webhook ingestion and a render with telemetry on against off, in one run.

- **webhooks**: the real API (uvicorn, one process) ingesting signed 100-event HubSpot batches into a fresh
  PostgreSQL database, concurrency 8. *off*: the same app built without ``instrument_api`` and without the
  Celery publish hook (no request metrics, ids, access line or spans); *metrics*: as shipped, tracing off;
  *on*: as shipped plus tracing (OTEL_EXPORTER_OTLP_ENDPOINT) exporting over OTLP/HTTP to a sink in this process
  that answers 200.
- **render**: ``render_video_task`` on a real worker (concurrency 1). *off*: no WORKER_METRICS_PORT, no
  OTEL endpoint; *on*: the worker host's metrics exporter (multiprocess files) and tracing with the same sink.

Every side runs with API_AUTH=off (loopback callers), so key checks cost nothing on either side. Rounds alternate
the order (off, on, on, off, …) so load from other processes falls on both sides alike, and the figures that
count are *paired*: each round's on/off ratio (time per event and server CPU per event; render wall and pool
CPU), then the median over rounds. The target is on/off ≤ 1.03.

    .venv/bin/python -m bench.telemetry [--batches 120] [--rounds 6] [--render-seconds 8] [--render-runs 2]
                                        [--quick] [--output PATH]

Prints a table and writes bench/results/telemetry.json (``--quick``: a smoke run that writes nothing).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import webhooks
from bench._common import (
    RESULTS_DIR,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    timed_task,
    video_bench,
    write_results,
)
from geminivideo import procs
from geminivideo.contracts import QueueName
from tests.support import media

RESULTS = RESULTS_DIR / "telemetry.json"
# The API as shipped but without telemetry: the hooks are replaced before the factory imports them.
PLAIN_APP = '''
import geminivideo.telemetry.celery_hooks as hooks
import geminivideo.telemetry.http as telemetry_http

hooks.install = lambda: None
telemetry_http.instrument_api = lambda app: None

from geminivideo.api.app import create_app

app = create_app()
'''


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps nothing: reads the export and answers an empty success."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # one line per export is noise
        return


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def order(rounds: int) -> list[str]:
    return rotated(rounds, ["off", "on"])


def rotated(rounds: int, sides: list[str]) -> list[str]:
    """Each round runs every side once; the order turns (and reverses every other round) from round to round."""
    found = []
    for r in range(rounds):
        turn = sides[r % len(sides):] + sides[:r % len(sides)]
        found += turn if r % 2 == 0 else turn[::-1]
    return found


# ─── webhooks ─────────────────────────────────────────────────────────────────────────────────────
def start_api(name: str, app: str, env: dict[str, str], logs: Path, app_dir: Path | None) -> tuple[Any, str]:
    """As bench/webhooks.py starts it (one uvicorn process), with a start-up allowance for a loaded machine."""
    args = ["--log-level", "warning", "--no-access-log", "--workers", "1"]
    if app_dir is not None:
        args += ["--app-dir", str(app_dir)]
    return procs.start_api(env, logs / f"{name}.log", app=app, name=name, uvicorn_args=args, timeout_s=300)


def webhook_sides(env: dict[str, str], work: Path, sink: str, batches: int, rounds: int) -> dict[str, list[Any]]:
    (work / "plain_api.py").write_text(PLAIN_APP)
    name, url = webhooks.create_database()
    base_env = {**env, "DATABASE_URL": url, "HUBSPOT_CLIENT_SECRET": webhooks.SECRET, "LOG_FORMAT": "json",
                "API_AUTH": "off"}
    variants = {
        "off": ("plain_api:app", base_env, work),
        "metrics": ("geminivideo.api:app", base_env, None),
        "on": ("geminivideo.api:app", {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink}, None),
    }
    runs: dict[str, list[Any]] = {"off": [], "metrics": [], "on": []}
    try:
        for side in rotated(rounds, ["off", "metrics", "on"]):
            app, side_env, app_dir = variants[side]
            proc, base = start_api(f"api-{side}", app, side_env, work, app_dir)
            try:
                webhooks.load(side, base, proc.pid, "warm-up", 100, 5, 2, 30, 1)
                runs[side].append(webhooks.load(side, base, proc.pid, "batch-100", 100, batches, 8, 120, 1))
            finally:
                proc.stop()
    finally:
        webhooks.drop_database(name)
    return runs


def webhook_row(runs: dict[str, list[Any]]) -> dict[str, Any]:
    def med(side: str, field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs[side]))

    row: dict[str, Any] = {"bench": "webhooks, 100-event batches"}
    for side in ("off", "metrics", "on"):
        row.update({f"{side}_events_per_s": med(side, "events_per_s"), f"{side}_p99_ms": med(side, "p99_ms"),
                    f"{side}_cpu_ms_per_event": med(side, "server_cpu_ms_per_event"),
                    f"runs_{side}_events_per_s": [r.events_per_s for r in runs[side]],
                    f"errors_{side}": sum(r.errors for r in runs[side])})
    for side in ("metrics", "on"):  # paired: round r of each side against round r of off; > 1: slower
        prefix = "" if side == "on" else "metrics_"
        time_ratios = [o.events_per_s / s.events_per_s for o, s in zip(runs["off"], runs[side], strict=True)]
        cpu_ratios = [s.server_cpu_ms_per_event / o.server_cpu_ms_per_event
                      for o, s in zip(runs["off"], runs[side], strict=True)]
        row[f"{prefix}throughput_ratio"] = round(statistics.median(time_ratios), 3)
        row[f"{prefix}cpu_ratio"] = round(statistics.median(cpu_ratios), 3)
        row[f"rounds_{prefix}time_ratio"] = [round(r, 3) for r in time_ratios]
        row[f"rounds_{prefix}cpu_ratio"] = [round(r, 3) for r in cpu_ratios]
    return row


# ─── render ───────────────────────────────────────────────────────────────────────────────────────
def render_job(folder: Path, seconds: float) -> dict[str, Any]:
    each = (seconds + 0.5) / 2
    scenes = [media.make_video(folder / "a.mp4", duration_s=each, size=(1280, 720), fps=30),
              media.make_video(folder / "b.mp4", duration_s=each, size=(854, 480), fps=25, tone_hz=660)]
    return {"scenes": [{"video_path": str(p)} for p in scenes],
            "output_format": {"width": 1280, "height": 720, "fps": 30, "preset": "veryfast"}}


def render_sides(env: dict[str, str], work: Path, sink: str, job: dict[str, Any], rounds: int,
                 runs_per_round: int) -> dict[str, list[tuple[float, float]]]:
    from geminivideo.video.tasks import render_video_task

    variants = {"off": env, "on": {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                                   "WORKER_METRICS_PORT": str(procs.free_port()),
                                   "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}}
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for side in order(rounds):
        worker = procs.start_worker("video", queues=[str(QueueName.RENDER)], env=variants[side], concurrency=1,
                                    hostname=f"bench-render-{side}-{uuid.uuid4().hex[:6]}@localhost",
                                    log_path=work / f"worker-{side}.log", ready_timeout_s=300)
        try:
            timed_task(worker, lambda: render_video_task.delay(job), 600)  # warm-up: imports, first FFmpeg
            for _ in range(runs_per_round):
                wall, cpu, _result = timed_task(worker, lambda: render_video_task.delay(job), 600)
                runs[side].append((wall, cpu))
        finally:
            worker.stop()
    return runs


def render_row(runs: dict[str, list[tuple[float, float]]], seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"bench": f"render {seconds:g} s 720p, 2 scenes"}
    for side in ("off", "on"):
        row[f"{side}_s"] = round(statistics.median(w for w, _ in runs[side]), 3)
        row[f"{side}_cpu_s"] = round(statistics.median(c for _, c in runs[side]), 3)
        row[f"runs_{side}_s"] = [round(w, 3) for w, _ in runs[side]]
        row[f"runs_{side}_cpu_s"] = [round(c, 3) for _, c in runs[side]]
    walls = [on[0] / off[0] for off, on in zip(runs["off"], runs["on"], strict=True)]  # paired, run by run
    cpus = [on[1] / off[1] for off, on in zip(runs["off"], runs["on"], strict=True)]
    row["wall_ratio"] = round(statistics.median(walls), 3)
    row["cpu_ratio"] = round(statistics.median(cpus), 3)
    row["rounds_wall_ratio"] = [round(r, 3) for r in walls]
    row["rounds_cpu_ratio"] = [round(r, 3) for r in cpus]
    return row


def show(hook: dict[str, Any], render: dict[str, Any]) -> None:
    header = f"{'bench':<30} {'off':>12} {'on':>12} {'on/off':>7} {'CPU off':>10} {'CPU on':>10} {'CPU on/off':>10}"
    webhook_line = (f"{hook['bench']:<30} {hook['off_events_per_s']:>8.0f} e/s {hook['on_events_per_s']:>8.0f} e/s "
                    f"{1 / hook['throughput_ratio']:>6.3f} {hook['off_cpu_ms_per_event']:>7.3f} ms "
                    f"{hook['on_cpu_ms_per_event']:>7.3f} ms {hook['cpu_ratio']:>10.3f}")
    metrics_line = (f"{'  (metrics only, no tracing)':<30} {'':>12} {hook['metrics_events_per_s']:>8.0f} e/s "
                    f"{1 / hook['metrics_throughput_ratio']:>6.3f} {'':>10} "
                    f"{hook['metrics_cpu_ms_per_event']:>7.3f} ms {hook['metrics_cpu_ratio']:>10.3f}")
    render_line = (f"{render['bench']:<30} {render['off_s']:>10.2f} s {render['on_s']:>10.2f} s "
                   f"{render['wall_ratio']:>6.3f} {render['off_cpu_s']:>8.2f} s {render['on_cpu_s']:>8.2f} s "
                   f"{render['cpu_ratio']:>10.3f}")
    print_table(header, [webhook_line, metrics_line, render_line])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=120, help="100-event requests per webhook run")
    parser.add_argument("--rounds", type=int, default=6, help="off/on rounds (order alternates)")
    parser.add_argument("--render-seconds", type=float, default=8.0)
    parser.add_argument("--render-runs", type=int, default=2, help="renders per side and round")
    add_run_options(parser, "20 batches, 2 rounds, a 2 s render once per side and round")
    args = parser.parse_args()
    apply_quick(parser, args, batches=20, rounds=2, render_seconds=2.0, render_runs=1)
    load_before = load_average_1m()
    with video_bench("gv-bench-telemetry-") as (work, env), otlp_sink() as sink:
        hook = webhook_row(webhook_sides(env, work, sink, args.batches, args.rounds))
        job = render_job(work / "media", args.render_seconds)
        render = render_row(render_sides(env, work, sink, job, args.rounds, args.render_runs), args.render_seconds)
    for row in (hook, render):
        row["load_average_1m"] = load_average_1m()
    show(hook, render)
    write_results(output_path(args, RESULTS), [hook, render], load_average_1m_before=load_before,
                  target="on/off <= 1.03")


if __name__ == "__main__":
    main()
