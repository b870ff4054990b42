"""``geminivideo demo``: the whole system end to end, as a sequence of named steps.

On embedded defaults (SQLite, the Redis at REDIS_URL or a private one started here, workers and the API
started and stopped here), it generates sample scenes and speech, renders an ad, makes previews with a
sprite, transcodes to H.265 and VP9, captions the speech, sends a signed HubSpot batch through the API,
runs the fatigue monitor and the winner index over generated ad data, and ends with a summary table.
The exit status is 0 only when every step succeeded; no process it started outlives it.

With ``--storage s3://bucket/prefix/`` the same steps run through the object store: the generated inputs
are uploaded under ``<prefix>inputs/<run>/``, every output goes to ``<prefix>outputs/<task id>/`` (OUTPUT_URL)
and the winner index to ``<prefix>index/`` (INDEX_URL, unless already set); after the summary it prints a
presigned download link for every stored output.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from celery.result import AsyncResult
from rich.console import Console
from rich.table import Table

from geminivideo import client, procs
from geminivideo.client import JobKind
from geminivideo.config import get_settings
from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER, TaskName, TaskStatus
from geminivideo.db.session import dispose_engine
from geminivideo.redis_client import reset_redis
from geminivideo.terminal import follow_job, progress_bars, signed_post

STEP_TIMEOUT_S = 900.0
TENANT = "demo"
SPEECH = ("GeminiVideo turns scenes into finished ads. Every render, preview and caption runs on a worker, "
          "and you can watch its progress live.")
DNA_PALETTE = {
    "hook_type": ["UGC testimonial", "problem-solution", "bold statistic", "question hook", "unboxing"],
    "visual_style": ["handheld selfie video", "cinematic product shot", "bright flat motion graphics",
                     "split-screen before and after"],
    "pacing": ["fast cuts", "slow and calm", "medium rhythm"],
    "cta_style": ["green button text", "voice-over call to action", "swipe-up arrow"],
    "audio_style": ["upbeat pop music", "calm voice-over", "trending sound"],
    "format": ["9:16", "1:1", "16:9"],
}


class StepFailed(Exception):
    """A step ran and did not produce what it should; the message says what."""


@dataclass
class StepOutcome:
    name: str
    ok: bool
    seconds: float
    rows: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Demo:
    """State shared by the steps: where things are, what was started, what each step produced."""

    console: Console
    workdir: Path
    caption_model: str | None = None
    storage: str | None = None  # s3://bucket/prefix/: inputs uploaded there, OUTPUT_URL below it
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[procs.ManagedProcess] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (s3:// URI, presigned URL) of stored outputs
    api_url: str = ""

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def inputs(self) -> Path:
        return get_settings().media_roots[0] / "geminivideo-demo"

    def child_env(self) -> dict[str, str]:
        # The marker lets a test (or a person) find every process this run started.
        settings = get_settings()
        # Spelled out so every child (and the readiness ping) uses what this process resolved, defaults included.
        resolved = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url}
        return {**os.environ, **resolved, "GV_DEMO_RUN": self.run_id, "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    # ─── Steps ───────────────────────────────────────────────────────────────────────────────────
    def step_database(self) -> list[tuple[str, str]]:
        from geminivideo.db.migrate import upgrade

        url = get_settings().database_url
        upgrade(url)
        return [("database", f"{url} (migrated)")]

    def step_redis(self) -> list[tuple[str, str]]:
        url = get_settings().redis_url
        if procs.redis_answers(url):
            return [("redis", f"{url} (already running)")]
        proc, url = procs.start_redis(data_dir=self.workdir / "redis")
        self.processes.append(proc)
        os.environ["REDIS_URL"] = url
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.pop("CELERY_RESULT_BACKEND", None)
        _refresh_settings()
        return [("redis", f"{url} (private, pid {proc.pid})")]

    def step_services(self) -> list[tuple[str, str]]:
        if get_settings().hubspot_client_secret is None:
            # The demo signs its own webhooks for the API it starts; a real secret is never invented.
            os.environ["HUBSPOT_CLIENT_SECRET"] = f"demo-{uuid.uuid4().hex}"
            _refresh_settings()
        if get_settings().api_auth == "on" and not get_settings().api_keys:
            # The API refuses to start without a key: the demo makes a one-run admin key for itself.
            os.environ["API_KEYS"] = f"demo={uuid.uuid4().hex}{uuid.uuid4().hex}"
            _refresh_settings()
        host = _hostname()
        workers = [
            ("video", [str(q) for q in VIDEO_QUEUE_ORDER], f"demo-video-{self.run_id}@{host}"),
            ("ml", [str(q) for q in ML_QUEUE_ORDER], f"demo-ml-{self.run_id}@{host}"),
        ]
        started = []
        for app_name, queues, hostname in workers:
            argv = procs.celery_argv(app_name, queues=queues, concurrency=2, hostname=hostname)
            proc = procs.spawn(f"worker:{hostname}", argv, env=self.child_env(), log_path=self.logs / f"{app_name}.log")
            proc.extra["hostname"] = hostname
            self.processes.append(proc)
            started.append(proc)
        api, self.api_url = self._start_api()
        for proc in started:
            procs.wait_worker_ready(proc, self.child_env(), 120)
        rows = [(f"{p.name.split(':')[1]}", f"pid {p.pid}, log {p.log_path}") for p in started]
        return [*rows, ("api", f"{self.api_url} (pid {api.pid})")]

    def _start_api(self) -> tuple[procs.ManagedProcess, str]:
        try:
            api, url = procs.start_api(self.child_env(), self.logs / "api.log", ready_path="/health")
        except RuntimeError as exc:
            raise StepFailed(f"the API did not start: {exc}") from None
        self.processes.append(api)
        return api, url

    def step_media(self) -> list[tuple[str, str]]:
        self.inputs.mkdir(parents=True, exist_ok=True)
        scenes = [
            _ffmpeg_scene(self.inputs / "scene1.mp4", "testsrc2=size=640x360:rate=25", 4, tone=440),
            _ffmpeg_scene(self.inputs / "scene2.mp4", "smptebars=size=480x360:rate=30", 3, tone=None),
            _speech_scene(self.inputs / "scene3.mp4", self.inputs / "speech.wav", SPEECH),
        ]
        self.outputs["scenes"] = self._to_store(scenes) if self.storage else scenes
        return [(p.name, f"{where} ({p.stat().st_size // 1024} KiB)")
                for p, where in zip(scenes, self.outputs["scenes"], strict=True)]

    def _to_store(self, paths: list[Path]) -> list[str]:
        """Upload the generated inputs under ``<storage>inputs/<run>/``: the workers read them from there."""
        from geminivideo.storage import transfer
        from geminivideo.storage.uri import allowed

        base = allowed(str(self.storage), field="--storage").join("inputs", self.run_id)
        uris = [base.join(p.name) for p in paths]
        for path, uri in zip(paths, uris, strict=True):
            transfer.upload(path, uri, task_id=f"demo-{self.run_id}")
        return [str(u) for u in uris]

    def step_render(self) -> list[tuple[str, str]]:
        job = {
            "scenes": [{"video_path": str(p)} for p in self._need("scenes")],
            "output_format": {"width": 640, "height": 360, "fps": 25, "preset": "veryfast"},
            "transitions": {"type": "fade", "duration": 0.5},
            "overlays": [{"type": "text", "text": "GeminiVideo demo", "position": "top", "font_size": 28}],
            "output_name": f"demo-{self.run_id}.mp4",
        }
        result = self._run_job(JobKind.RENDER, job, "render")
        self.outputs["render"] = result["output_path"]
        return [("rendered ad", f"{result['output_path']} ({_size(result['file_size'])}, {result['duration']:.1f} s, "
                 f"{result['width']}x{result['height']} {result['codec']})")]

    def step_preview(self) -> list[tuple[str, str]]:
        job = {"video_path": self._need("render"), "num_frames": 8, "width": 240, "sprite": True}
        result = self._run_job(JobKind.PREVIEW, job, "preview + sprite")
        return [("preview frames", f"{result['num_frames']} in {result['preview_dir']}"),
                ("sprite sheet", f"{result.get('sprite_path')} + {Path(str(result.get('vtt_path'))).name}")]

    def step_transcode(self) -> list[tuple[str, str]]:
        source = self._need("render")
        formats = {"H.265 / mp4": {"codec": "h265", "container": "mp4", "preset": "veryfast"},
                   "VP9 / webm": {"codec": "vp9", "container": "webm"}}
        ids = {label: client.submit(JobKind.TRANSCODE, {"input_path": source, "output_format": fmt})
               for label, fmt in formats.items()}
        results = self._follow_many(ids)
        return [(label, f"{r['output_path']} ({_size(r['file_size'])}, {r['codec']})") for label, r in results.items()]

    def step_captions(self) -> list[tuple[str, str]]:
        from geminivideo.video.captions.models import offline_ready

        available = offline_ready()
        model = self.caption_model or (available[0] if available else "base")
        job = {"video_path": self._need("render"), "model": model, "language": "en"}
        result = self._run_job(JobKind.CAPTION, job, f"captions ({model})")
        text = _first_cue(result.get("srt_path"), result.get("outputs") or [])
        return [("captions", f"{result['srt_path']} + .vtt, {result.get('num_cues', result['num_segments'])} cues, "
                 f"language {result['language']}, model {result['model']}"), ("first cue", text)]

    def step_ad_data(self) -> list[tuple[str, str]]:
        from geminivideo.ml.decisions import datagen

        # Histories go in the way real ones do: a CSV export loaded by `geminivideo metrics import`.
        spec = datagen.DatasetSpec(n_ads=80, days=30, seed=11, tenant_id=TENANT)
        export = self.workdir / "ad-metrics.csv"
        dataset = datagen.export_metrics_csv(spec, export)
        datagen.delete_ads(dataset.ad_ids)  # a re-run starts from the same clean histories
        command = [sys.executable, "-m", "geminivideo.cli", "metrics", "import", str(export), "--tenant", TENANT]
        done = subprocess.run(command, env=self.child_env(), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise StepFailed(f"metrics import exited {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
        datagen.write_outcomes(spec)  # credited pipeline comes from CRM webhooks, not from the export
        self.outputs["ads"] = dataset.ad_ids
        profiles: dict[str, int] = {}
        for truth in dataset.truth.values():
            profiles[truth.profile.value] = profiles.get(truth.profile.value, 0) + 1
        return [("ad histories", f"{len(dataset.ad_ids)} ads × 30 days, {dataset.metric_rows} daily rows imported "
                 f"from {export.name}: {done.stdout.strip()}"),
                ("profiles", ", ".join(f"{k} {v}" for k, v in sorted(profiles.items())))]

    def step_webhooks(self) -> list[tuple[str, str]]:
        secret = get_settings().hubspot_client_secret
        if secret is None:
            raise StepFailed("HUBSPOT_CLIENT_SECRET is not set, so no signed webhook can be sent")
        batch = _hubspot_batch(self.run_id)
        response = signed_post(self.api_url + "/api/webhooks/hubspot", json.dumps(batch).encode(),
                               secret.get_secret_value())
        if response.status_code != 200:
            raise StepFailed(f"the webhook endpoint answered {response.status_code}: {response.text[:300]}")
        report = response.json()
        keys = [e["key"] for e in report.get("events", []) if e.get("processed")]
        events = self._wait_webhooks(keys)
        failed = [e for e in events if e.get("status") == "failed"]
        credit = sum(float((e.get("result") or {}).get("credit", 0.0)) for e in events)
        if failed:
            raise StepFailed(f"{len(failed)} webhook events failed: {failed[0].get('error')}")
        return [("hubspot batch", f"{report['received']} events signed v3, {report['stored']} stored, "
                 f"{report['enqueued']} processed by the ML worker"),
                ("synthetic revenue", f"net credit {credit:,.2f} across {len(events)} deal-stage changes")]

    def _wait_webhooks(self, keys: list[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 120
        while True:
            events = [httpx.get(f"{self.api_url}/api/webhooks/hubspot/events/{k}", headers=_api_headers(),
                                timeout=10).json() for k in keys]
            if all(e.get("status") not in ("pending", "enqueued", "processing") for e in events):
                return events
            if time.monotonic() > deadline:
                raise StepFailed(f"webhook events not processed within 120 s: {[e.get('status') for e in events]}")
            time.sleep(0.5)

    def step_fatigue(self) -> list[tuple[str, str]]:
        self._need("ads")
        result = self._run_task(TaskName.MONITOR_ALL_ADS_FATIGUE, {"tenant_id": TENANT}, "fatigue monitor")
        from geminivideo.ml.decisions import approvals

        pending = approvals.list_changes("pending_approval", tenant_id=TENANT, limit=1000)
        by_status = ", ".join(f"{k} {v}" for k, v in sorted(result["by_status"].items()))
        return [("fatigue scan", f"{result['ads_scanned']} ads: {by_status}"),
                ("approval queue", f"{result['critical']} critical → {len(pending)} proposals pending approval")]

    def step_winners(self) -> list[tuple[str, str]]:
        from geminivideo.db.session import session_scope
        from geminivideo.ml.winners import service as winners

        rng = random.Random(11)
        with session_scope() as session:
            for ad_id in self._need("ads"):
                dna = {key: rng.choice(values) for key, values in DNA_PALETTE.items()}
                winners.store_dna(session, ad_id, {**dna, "headline": f"Creative {ad_id}"})
        result = self._run_task(TaskName.AUTO_INDEX_WINNERS, {}, "winner index")
        if result["total"] == 0:
            raise StepFailed(f"no winner was indexed ({result['winners']} winners found among the demo ads)")
        query = "UGC testimonial, handheld selfie video, fast cuts"
        hits = winners.search(query, k=3, tenant_id=TENANT)
        best = ", ".join(f"{h.ad_id} ({h.similarity:.2f})" for h in hits)
        return [("winner index", f"{result['total']} winners indexed ({result['embedded']} embedded)"),
                (f"search {query!r}", best or "no hits")]

    # ─── Helpers ─────────────────────────────────────────────────────────────────────────────────
    def _need(self, key: str) -> Any:
        if key not in self.outputs:
            raise StepFailed(f"skipped: needs the {key!r} output of an earlier step, which failed")
        return self.outputs[key]

    def _run_job(self, kind: JobKind, payload: dict[str, Any], label: str) -> dict[str, Any]:
        return self._follow_many({label: client.submit(kind, payload)})[label]

    def _keep_links(self, result: dict[str, Any]) -> None:
        """Remember the presigned URL of every output a job stored (none for local results)."""
        self.links += [(str(o["url"]), str(o["download_url"])) for o in result.get("outputs") or []
                       if o.get("download_url")]

    def _run_task(self, task: TaskName, kwargs: dict[str, Any], label: str) -> dict[str, Any]:
        return self._follow_many({label: client.send(task, [], kwargs)})[label]

    def _follow_many(self, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Live bars for several tasks at once; every result, or StepFailed naming the first failure."""
        from concurrent.futures import ThreadPoolExecutor

        with progress_bars(self.console) as bars, ThreadPoolExecutor(len(ids)) as pool:
            futures = {label: pool.submit(follow_job, bars, task_id, label, timeout_s=STEP_TIMEOUT_S)
                       for label, task_id in ids.items()}
            finals = {label: future.result() for label, future in futures.items()}
        results = {}
        for label, task_id in ids.items():
            event = finals[label]
            state = client.job_state(task_id)  # also brings the job's video_jobs record up to date
            if event is None or event.status is not TaskStatus.COMPLETED:
                raise StepFailed(f"{label}: {state.status.value}: {state.error or state.message}")
            value = AsyncResult(task_id, app=client.video_app()).get(timeout=30)
            results[label] = value if isinstance(value, dict) else {"value": value}
            self._keep_links(results[label])
        return results

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout_s=30)
        self.processes.clear()

    def steps(self) -> list[tuple[str, Callable[[], list[tuple[str, str]]]]]:
        return [
            ("database", self.step_database), ("redis", self.step_redis), ("workers + API", self.step_services),
            ("sample media", self.step_media), ("render", self.step_render), ("preview", self.step_preview),
            ("transcode", self.step_transcode), ("captions", self.step_captions), ("ad data", self.step_ad_data),
            ("hubspot webhooks", self.step_webhooks), ("fatigue monitor", self.step_fatigue),
            ("winner index", self.step_winners),
        ]


# ─── Running ─────────────────────────────────────────────────────────────────────────────────────
def run_demo(console: Console, *, workdir: Path, caption_model: str | None = None, storage: str | None = None) -> int:
    """Run every step, print the summary; 0 only if all succeeded. Everything started is stopped.

    ``storage`` (``s3://bucket/prefix/``): the same steps with inputs and outputs in the object store."""
    demo = Demo(console, workdir.resolve(), caption_model, storage=_use_storage(storage) if storage else None)
    demo.logs.mkdir(parents=True, exist_ok=True)
    console.rule(f"[bold]GeminiVideo demo[/] (run {demo.run_id}, logs in {demo.logs})")
    outcomes: list[StepOutcome] = []
    try:
        for name, step in demo.steps():
            outcomes.append(_run_step(console, name, step))
            if name in ("database", "redis", "workers + API") and not outcomes[-1].ok:
                break  # nothing else can run without these
    finally:
        console.print("[dim]stopping the workers, the API and any private Redis …[/]")
        demo.stop_all()
    _summary(console, outcomes, len(demo.steps()))
    _print_links(console, demo.links)
    return 0 if len(outcomes) == len(demo.steps()) and all(o.ok for o in outcomes) else 1


def _run_step(console: Console, name: str, step: Callable[[], list[tuple[str, str]]]) -> StepOutcome:
    console.print(f"[bold cyan]▶ {name}[/]")
    started = time.monotonic()
    try:
        rows = step()
    except Exception as exc:  # a failed step is reported in the summary; the demo goes on where it can
        outcome = StepOutcome(name, False, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
        console.print(f"  [red]✗ {outcome.error}[/]")
        return outcome
    outcome = StepOutcome(name, True, time.monotonic() - started, rows)
    for what, detail in rows:
        console.print(f"  [green]✓[/] {what}: {detail}")
    return outcome


def _summary(console: Console, outcomes: list[StepOutcome], planned: int) -> None:
    table = Table(title="GeminiVideo demo summary", show_lines=False)
    for column in ("step", "", "time", "output"):
        table.add_column(column)
    for o in outcomes:
        details = "\n".join(f"{what}: {detail}" for what, detail in o.rows) if o.ok else f"[red]{o.error}[/]"
        table.add_row(o.name, "[green]✓[/]" if o.ok else "[red]✗[/]", f"{o.seconds:.1f} s", details)
    console.print(table)
    passed = sum(o.ok for o in outcomes)
    colour = "green" if passed == planned else "red"
    console.print(f"[bold {colour}]{passed}/{planned} steps succeeded[/]")


def _print_links(console: Console, links: list[tuple[str, str]]) -> None:
    if not links:
        return
    console.print(f"[bold]Download links[/] (presigned GET, valid {get_settings().presign_expiry_s} s):")
    for uri, url in links:
        # soft_wrap: a link is printed whole on one line, never folded at the terminal's width
        console.print(f"  {uri}\n    {url}", soft_wrap=True, markup=False, highlight=False)


# ─── Small pure helpers ──────────────────────────────────────────────────────────────────────────
def _use_storage(url: str) -> str:
    """Point this process and the workers it starts at ``url``: OUTPUT_URL (and INDEX_URL unless set) below it,
    its bucket allowed. A malformed URL stops the demo before anything starts (InvalidPayload names it)."""
    from geminivideo.storage.uri import parse

    prefix = url if url.endswith("/") else url + "/"
    bucket = parse(prefix, field="--storage").bucket
    buckets = [b for b in os.environ.get("STORAGE_BUCKETS", "").split(",") if b]
    os.environ["STORAGE_BUCKETS"] = ",".join([*buckets, bucket] if bucket not in buckets else buckets)
    os.environ["OUTPUT_URL"] = prefix + "outputs/"
    os.environ.setdefault("INDEX_URL", prefix + "index/")
    _refresh_settings()
    return prefix


def _refresh_settings() -> None:
    get_settings.cache_clear()
    reset_redis()
    dispose_engine()


def _api_headers() -> dict[str, str]:
    """The demo's key for the API it started (none needed when API_AUTH=off)."""
    keys = get_settings().api_keys
    return {"X-API-Key": keys[0].partition("=")[2] or keys[0]} if keys else {}


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.0f} KiB" if num_bytes < 1024 * 1024 else f"{num_bytes / 1024 / 1024:.1f} MiB"


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise StepFailed(f"{argv[0]} failed: {result.stderr.strip()[-500:]}")


def _ffmpeg_scene(path: Path, source: str, seconds: float, *, tone: int | None) -> Path:
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}:duration={seconds}"]
    if tone is not None:
        argv += ["-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}", "-c:a", "aac", "-shortest"]
    _run([*argv, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)])
    return path


def _speech_scene(path: Path, wav: Path, text: str) -> Path:
    if shutil.which("espeak-ng") is None:
        raise StepFailed("espeak-ng is not installed (apt-get install espeak-ng): it speaks the caption sample")
    _run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text])
    _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=0x1d3557:size=640x360:rate=25",
          "-i", str(wav), "-shortest", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
          "-c:a", "aac", str(path)])
    return path


def _first_cue(srt_path: str | None, stored: list[dict[str, Any]]) -> str:
    links = {o["url"]: o["download_url"] for o in stored}
    if srt_path in links:  # in the object store: read it through its presigned URL
        content = httpx.get(links[srt_path], timeout=30).text
    elif srt_path and Path(srt_path).exists():
        content = Path(srt_path).read_text()
    else:
        return "(no SRT written)"
    blocks = content.strip().split("\n\n")
    lines = blocks[0].splitlines()[2:] if blocks else []
    return " ".join(lines) or "(empty)"


def _hubspot_batch(run_id: str) -> list[dict[str, Any]]:
    """HubSpot's webhook array: deal-stage changes of three deals walking their pipeline."""
    now_ms = int(time.time() * 1000)
    walks = {9001: ["appointmentscheduled", "qualifiedtobuy", "closedwon"], 9002: ["appointmentscheduled",
             "contractsent"], 9003: ["qualifiedtobuy", "closedlost"]}
    events, event_id = [], int(run_id, 16) % 1_000_000 * 100
    for deal, stages in walks.items():
        for step, stage in enumerate(stages):
            event_id += 1
            events.append({"eventId": event_id, "subscriptionId": 1, "portalId": 62515, "appId": 1,
                           "occurredAt": now_ms - (len(stages) - step) * 60_000, "attemptNumber": 0,
                           "subscriptionType": "deal.propertyChange", "objectId": deal * 1000 + int(run_id, 16) % 997,
                           "propertyName": "dealstage", "propertyValue": stage, "changeSource": "CRM"})
    return events
