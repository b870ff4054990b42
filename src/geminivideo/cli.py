"""The ``geminivideo`` command (typer + rich): the demo, job submission with live progress, and operations.

    geminivideo demo                          the whole system end to end on embedded defaults
    geminivideo render A.mp4 B.mp4 --wait     submit a job, follow its progress bar (pub/sub)
    geminivideo status ID | cancel ID | jobs | workers | queues
    geminivideo fetch ID [--to DIR]           download a job's outputs from the object store
    geminivideo approvals list|approve|reject · winners search "…" · webhook send · db upgrade
    geminivideo keys create NAME --scope jobs:read [--tenant T] · keys list · keys revoke NAME

Jobs go straight to the broker (the same ``geminivideo.client`` the API uses) and are recorded in
``video_jobs``; heavy modules (FFmpeg wrappers, Whisper, FAISS) are imported only by the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from geminivideo import client
from geminivideo.client import JobKind
from geminivideo.contracts import (
    CaptionJob,
    PreviewJob,
    RenderJob,
    TaskStatus,
    TranscodeJob,
    parse_payload,
)
from geminivideo.errors import GeminiVideoError
from geminivideo.security.cli import keys_app
from geminivideo.telemetry.logs import configure_for_script
from geminivideo.terminal import follow_job, progress_bars, signed_post

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(help="GeminiVideo Workers: demo, video jobs, workers, queues, approvals, winners.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
approvals_app = typer.Typer(help="The approval queue (pending ad changes).", no_args_is_help=True)
winners_app = typer.Typer(help="The winner index.", no_args_is_help=True)
webhook_app = typer.Typer(help="HubSpot webhooks.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
metrics_app = typer.Typer(help="Daily ad metrics (imports).", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")
app.add_typer(winners_app, name="winners")
app.add_typer(webhook_app, name="webhook")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(metrics_app, name="metrics")

Wait = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow progress until the job ends (exit 1 unless it completed).")
]


def _submit_and_report(kind: JobKind, payload: dict[str, Any], wait: bool) -> None:
    task_id = client.submit(kind, payload)
    console.print(f"[green]submitted[/] {kind.value} job [bold]{task_id}[/]")
    if not wait:
        return
    with progress_bars(console) as progress:
        last = follow_job(progress, task_id, kind.value)
    state = client.job_state(task_id)
    _print_state(state)
    if last is None or state.status is not TaskStatus.COMPLETED:
        raise typer.Exit(1)


def _print_state(state: client.JobState) -> None:
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(state.status.value, "cyan")
    table = Table(show_header=False, box=None)
    table.add_row("task", state.task_id)
    table.add_row("kind", state.kind or state.task_name or "?")
    table.add_row("status", f"[{colour}]{state.status.value}[/] ({state.celery_state}) {state.progress:.0f} %")
    if state.message:
        table.add_row("message", state.message)
    if state.error:
        table.add_row("error", f"[red]{state.error}[/]")
    for key, value in (state.result or {}).items():
        table.add_row(key, json.dumps(value) if isinstance(value, list | dict) else str(value))
    console.print(table)


def _absolute(path: Path) -> str:
    return str(path.expanduser().resolve())


# ─── Job commands ────────────────────────────────────────────────────────────────────────────────
@app.command()
def render(
    scenes: Annotated[list[Path], typer.Argument(help="Scene videos, in order.")],
    width: int = 1920, height: int = 1080, fps: float = 30,
    transitions: Annotated[bool, typer.Option(help="Crossfade between scenes.")] = True,
    text: Annotated[str | None, typer.Option(help="A text overlay across the whole ad.")] = None,
    output_name: str | None = None, gpu: bool = False, wait: Wait = False,
) -> None:
    """Render an ad from scenes (render_video_task)."""
    job: dict[str, Any] = {
        "scenes": [{"video_path": _absolute(p)} for p in scenes],
        "output_format": {"width": width, "height": height, "fps": fps},
        "transitions": transitions, "use_gpu": gpu, "output_name": output_name,
        "overlays": [{"type": "text", "text": text}] if text else [],
    }
    _submit_and_report(JobKind.RENDER, parse_payload(RenderJob, job).model_dump(mode="json"), wait)


@app.command()
def preview(
    video: Path, frames: Annotated[int, typer.Option("--frames", "-n")] = 10, width: int = 320,
    sprite: Annotated[bool, typer.Option(help="Also a sprite sheet with a WebVTT thumbnail track.")] = False,
    wait: Wait = False,
) -> None:
    """Extract evenly spaced preview frames (generate_preview_task)."""
    job = {"video_path": _absolute(video), "num_frames": frames, "width": width, "sprite": sprite}
    _submit_and_report(JobKind.PREVIEW, parse_payload(PreviewJob, job).model_dump(mode="json"), wait)


@app.command()
def transcode(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT")], codec: str = "h264", container: str = "mp4",
    crf: int | None = None, preset: str | None = None, width: int | None = None, height: int | None = None,
    wait: Wait = False,
) -> None:
    """Transcode to h264/h265/vp9/av1 in mp4/webm/mkv (transcode_task)."""
    output = {"codec": codec, "container": container, "crf": crf, "preset": preset, "width": width, "height": height}
    job = {"input_path": _absolute(input_path), "output_format": output}
    _submit_and_report(JobKind.TRANSCODE, parse_payload(TranscodeJob, job).model_dump(mode="json"), wait)


@app.command()
def caption(
    video: Path, model: str = "base", language: str | None = None,
    formats: Annotated[list[str] | None, typer.Option("--format", help="srt, vtt, json (repeatable)")] = None,
    wait: Wait = False,
) -> None:
    """Transcribe speech into SRT/WebVTT captions (caption_task)."""
    job: dict[str, Any] = {"video_path": _absolute(video), "model": model, "language": language}
    if formats:
        job["formats"] = formats
    _submit_and_report(JobKind.CAPTION, parse_payload(CaptionJob, job).model_dump(mode="json"), wait)


@app.command()
def status(task_id: str) -> None:
    """A job's status, progress, and result or error."""
    _print_state(client.job_state(task_id))


@app.command()
def fetch(
    task_id: str, to: Annotated[Path, typer.Option("--to", help="Folder for the files (created).")] = Path("."),
) -> None:
    """Download a finished job's outputs from the object store (fresh presigned URLs), with a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from geminivideo.storage.fetch import fetch_outputs
    from geminivideo.storage.outputs import stored_outputs

    objects = stored_outputs(client.job_state(task_id).result)
    if not objects:
        err_console.print(f"[red]{task_id}: no outputs in the object store (not finished, or stored locally)[/]")
        raise typer.Exit(1)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console) as bars:
        ids = {o.url: bars.add_task(o.name, total=o.size) for o in objects}
        files = fetch_outputs(objects, to, lambda item, n: bars.advance(ids[item.url], n))
    for path in files:
        console.print(f"[green]saved[/] {path}")


@app.command()
def cancel(task_id: str) -> None:
    """Cancel a job (revoke with terminate: a running FFmpeg dies, partial outputs are removed)."""
    state = client.cancel(task_id)
    console.print(f"[yellow]{state.task_id}: {state.status.value}[/]")


@app.command()
def jobs(limit: int = 20, kind: JobKind | None = None) -> None:
    """Recently submitted video jobs."""
    table = Table("task", "kind", "status", "created", "error")
    for row in client.list_jobs(kind=kind, limit=limit):
        table.add_row(row.task_id, row.kind, row.status, f"{row.created_at:%Y-%m-%d %H:%M:%S}", row.error or "")
    console.print(table)


@app.command()
def workers(timeout_s: Annotated[float, typer.Option("--timeout")] = 1.0) -> None:
    """Workers answering ping: queues, pool size, tasks processed, tasks running."""
    found = client.workers(timeout_s)
    table = Table("worker", "app", "queues", "concurrency", "processed", "active")
    for w in found:
        table.add_row(w.name, w.app, ",".join(w.queues), str(w.concurrency), str(w.processed), str(len(w.active)))
    console.print(table)
    if not found:
        err_console.print("[yellow]no worker answered (start them with scripts/start-workers.sh)[/]")
        raise typer.Exit(1)


@app.command()
def queues() -> None:
    """Messages waiting per queue."""
    table = Table("queue", "app", "priority", "messages")
    for q in client.queue_lengths():
        table.add_row(q.name, q.app, str(q.priority), str(q.messages))
    console.print(table)


# ─── Approvals, winners, webhooks, database ──────────────────────────────────────────────────────
@approvals_app.command("list")
def approvals_list(
    status_: Annotated[str, typer.Option("--status", help="pending_approval, approved, … or all")] = "pending_approval",
    limit: int = 50,
) -> None:
    """Pending ad changes, newest first."""
    from geminivideo.ml.decisions import approvals

    rows = approvals.list_changes(None if status_ == "all" else status_, limit=limit)
    table = Table("id", "ad", "campaign", "change", "requested", "source", "status", "reason")
    for c in rows:
        table.add_row(str(c.id), c.ad_id, c.campaign_id, c.change_type, str(c.requested_value or ""), c.source,
                      c.status, c.reason[:60])
    console.print(table)


@approvals_app.command("approve")
def approvals_approve(change_id: int, by: Annotated[str, typer.Option("--by")] = "cli",
                      note: str | None = None) -> None:
    """Approve a change; the executor applies it through the safety gates."""
    from geminivideo.ml.decisions import approvals

    change = approvals.approve_change(change_id, by, note)
    console.print(f"[green]change {change.id}: {change.status}[/]")


@approvals_app.command("reject")
def approvals_reject(change_id: int, by: Annotated[str, typer.Option("--by")] = "cli",
                     note: str | None = None) -> None:
    """Reject a change; nothing is executed."""
    from geminivideo.ml.decisions import approvals

    change = approvals.reject_change(change_id, by, note)
    console.print(f"[yellow]change {change.id}: {change.status}[/]")


@winners_app.command("search")
def winners_search(query: str, k: int = 5, tenant: str | None = None,
                   ad_format: Annotated[str | None, typer.Option("--format")] = None) -> None:
    """Winning ads whose creative DNA is most like QUERY."""
    from geminivideo.ml.winners import service as winners

    table = Table("ad", "similarity", "format", "hook", "metrics")
    for hit in winners.search(query, k=k, tenant_id=tenant, format=ad_format):
        metrics = ", ".join(f"{key}={value:.3g}" for key, value in list(hit.metrics.items())[:4])
        table.add_row(hit.ad_id, f"{hit.similarity:.3f}", hit.format or "", str(hit.dna.get("hook_type", "")),
                      metrics)
    console.print(table)


@webhook_app.command("send")
def webhook_send(
    deal_id: Annotated[str, typer.Option("--deal")] = "deal_demo_1",
    stage_to: Annotated[str, typer.Option("--to")] = "closedwon",
    stage_from: Annotated[str | None, typer.Option("--from")] = None,
    value: Annotated[float | None, typer.Option("--value")] = 10_000.0,
    tenant: str = "default",
    api_url: Annotated[str | None, typer.Option(help="API base URL (default ML_SERVICE_URL)")] = None,
) -> None:
    """Send one signed deal-stage change to the API's HubSpot webhook endpoint."""
    from geminivideo.config import get_settings

    settings = get_settings()
    if settings.hubspot_client_secret is None:
        raise typer.BadParameter("HUBSPOT_CLIENT_SECRET is not set: the webhook cannot be signed")
    event = {"dealId": deal_id, "stageTo": stage_to, "stageFrom": stage_from, "dealValue": value, "tenantId": tenant}
    body = json.dumps({k: v for k, v in event.items() if v is not None}).encode()
    url = (api_url or settings.ml_service_url).rstrip("/") + "/api/webhooks/hubspot"
    response = signed_post(url, body, settings.hubspot_client_secret.get_secret_value())
    console.print_json(response.text)
    if response.status_code != 200:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from geminivideo.config import get_settings
    from geminivideo.db.migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("[green]database at the latest revision[/]")


@metrics_app.command("import")
def metrics_import(
    file: Annotated[Path, typer.Argument(help="CSV (Ads Manager export or project columns) or JSON Lines.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the ads belong to.")],
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Import the good rows of a file "
                                                "with bad ones (they are listed).")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: from the extension)")] = None,
) -> None:
    """Upsert daily ad metrics by (tenant, ad, day): a re-import changes nothing, a corrected day replaces it."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from geminivideo.ml.platforms.metrics_import import import_metrics_file

    with Progress(TextColumn("[bold]import"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=err_console) as bar:
        task = bar.add_task("import", total=max(file.stat().st_size, 1) if file.is_file() else 1)
        report = import_metrics_file(file, tenant, skip_bad_rows=skip_bad_rows, fmt=fmt,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    for error in sorted(report.errors, key=lambda e: e.line):
        err_console.print(f"[{'yellow' if report.status == 'imported' else 'red'}]line {error.line}:[/] {error.reason}")
    if report.bad_rows > len(report.errors):
        err_console.print(f"… and {report.bad_rows - len(report.errors)} more bad rows")
    colour = "green" if report.status == "imported" else "red"
    console.print(f"[{colour}]{report.summary()}[/]")
    if report.status != "imported":
        raise typer.Exit(1)


# ─── Demo ────────────────────────────────────────────────────────────────────────────────────────
@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where logs, the private Redis and inputs go.")] = Path("var/demo"),
    caption_model: Annotated[str | None, typer.Option(help="Whisper model (default: one installed offline)")] = None,
    storage: Annotated[str | None, typer.Option(help="s3://bucket/prefix/: media in and out through the object "
                                                     "store (S3_ENDPOINT_URL, AWS_* settings)")] = None,
) -> None:
    """Run the whole system end to end: render → preview → transcode → captions, webhooks, fatigue, winners."""
    from geminivideo.demo import run_demo

    raise typer.Exit(run_demo(console, workdir=workdir, caption_model=caption_model, storage=storage))


def main() -> None:
    """Console entry point: errors of this package become one red line and exit status 1."""
    import redis
    from kombu.exceptions import OperationalError
    from sqlalchemy.exc import SQLAlchemyError

    configure_for_script()  # LOG_FORMAT for log lines (geminivideo.telemetry.logs)
    try:
        app()
    except GeminiVideoError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except SQLAlchemyError as exc:
        err_console.print(f"[red]database error:[/] {exc.__class__.__name__}: {str(exc).splitlines()[0]}\n"
                          "check DATABASE_URL, and run `geminivideo db upgrade` on a new database")
        sys.exit(1)
    except (redis.RedisError, OperationalError) as exc:
        err_console.print(f"[red]Redis/broker unreachable:[/] {exc}\ncheck REDIS_URL (and CELERY_BROKER_URL)")
        sys.exit(1)


if __name__ == "__main__":
    main()
