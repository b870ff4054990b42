"""The `geminivideo` command, run as a real process against an isolated deployment with a real worker.

Given the module's Redis database, SQLite and video worker, when jobs are submitted with --wait, then the
progress bar follows pub/sub to the end and the exit status tells how the job ended; operations commands
read the same workers, queues and approvals; bad input is one clear error line and exit status 1.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from geminivideo import procs
from geminivideo.contracts import utcnow
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import ChangeType
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals
from geminivideo.ml.decisions.datagen import ensure_tenant
from tests.support.env import applied


def cli(env: dict[str, str], *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geminivideo.cli", *args], env={**env, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=timeout_s)


def test_transcode_wait_follows_progress_and_reports_the_result(
    ops_env: dict[str, str], ops_video_worker: procs.ManagedProcess, sample_video: Path
) -> None:
    done = cli(ops_env, "transcode", str(sample_video), "--codec", "h265", "--preset", "ultrafast", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted transcode job" in done.stdout and "100%" in done.stdout and "completed" in done.stdout
    task_id = done.stdout.split("submitted transcode job", 1)[1].split()[0]
    output = next(line.split()[-1] for line in done.stdout.splitlines() if line.strip().startswith("output_path"))
    assert Path(output).exists()

    status = cli(ops_env, "status", task_id)
    assert status.returncode == 0 and "completed" in status.stdout and "SUCCESS" in status.stdout
    jobs = cli(ops_env, "jobs", "--kind", "transcode")
    assert task_id in jobs.stdout and "completed" in jobs.stdout
    cancel = cli(ops_env, "cancel", task_id)
    assert cancel.returncode == 1 and "already completed" in cancel.stderr


def test_a_failing_job_exits_1_with_its_reason(
    ops_env: dict[str, str], ops_video_worker: procs.ManagedProcess, tmp_path: Path
) -> None:
    outside = tmp_path / "not-in-media-roots.mp4"
    outside.write_bytes(b"x" * 100)
    result = cli(ops_env, "preview", str(outside), "--wait")
    assert result.returncode == 1
    assert "failed" in result.stdout and "media roots" in result.stdout


def test_bad_input_is_one_clear_error(ops_env: dict[str, str]) -> None:
    result = cli(ops_env, "render", "/tmp/a.mp4", "--width", "5")
    assert result.returncode == 1
    assert "output_format.width" in result.stderr and "Traceback" not in result.stderr
    unknown = cli(ops_env, "status", "no-such-task")
    assert unknown.returncode == 1 and "no job with id 'no-such-task'" in unknown.stderr


def test_operations_commands(ops_env: dict[str, str], ops_video_worker: procs.ManagedProcess) -> None:
    workers = cli(ops_env, "workers")
    assert workers.returncode == 0 and str(ops_video_worker.extra["hostname"]) in workers.stdout
    queues = cli(ops_env, "queues")
    assert queues.returncode == 0 and "render_queue" in queues.stdout and "hubspot-webhook-events" in queues.stdout
    assert cli(ops_env, "db", "upgrade").returncode == 0
    approvals = cli(ops_env, "approvals", "list", "--status", "all")
    assert approvals.returncode == 0 and "change" in approvals.stdout
    missing = cli(ops_env, "approvals", "approve", "999999")
    assert missing.returncode == 1 and "999999" in missing.stderr
    entry = subprocess.run([str(Path(sys.executable).with_name("geminivideo")), "--help"], capture_output=True,
                           text=True, timeout=60)
    assert entry.returncode == 0 and "demo" in entry.stdout


def test_webhook_send_signs_a_request_the_api_accepts(ops_env: dict[str, str], api: str) -> None:
    sent = cli(ops_env, "webhook", "send", "--deal", "cli-deal-1", "--to", "contractsent", "--api-url", api)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert '"signature": "v3"' in sent.stdout and '"stored": 1' in sent.stdout
    unsigned = cli({**ops_env, "HUBSPOT_CLIENT_SECRET": "not-the-api-secret"}, "webhook", "send", "--api-url", api)
    assert unsigned.returncode == 1 and "does not match" in unsigned.stdout


def test_caption_wait_writes_the_captions(
    ops_env: dict[str, str], ops_video_worker: procs.ManagedProcess, spoken_video: Path
) -> None:
    done = cli(ops_env, "caption", str(spoken_video), "--model", "tiny.en", "--format", "srt", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted caption job" in done.stdout and "completed" in done.stdout
    srt_path = next(line.split()[-1] for line in done.stdout.splitlines() if line.strip().startswith("srt_path"))
    assert "sale" in Path(srt_path).read_text(encoding="utf-8").lower()


def _pending_change(ops_env: dict[str, str]) -> int:
    """One pending proposal in the deployment's database, for an ad of a tenant of its own."""
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    with applied({"DATABASE_URL": ops_env["DATABASE_URL"]}):
        with session_scope() as session:
            ensure_tenant(session, tenant)
            session.add(Ad(id=f"{tenant}-ad", tenant_id=tenant, campaign_id=f"{tenant}-c", name="ad",
                           status="active", daily_budget=50.0, launched_at=utcnow()))
        view = approvals.propose_change(f"{tenant}-ad", ChangeType.PAUSE, None, reason="fatigued")
    assert view is not None
    return view.id


def _decision(ops_env: dict[str, str], change_id: int) -> tuple[str, str | None, str | None]:
    with applied({"DATABASE_URL": ops_env["DATABASE_URL"]}):
        change = approvals.show_change(change_id)
    return str(change.status), change.decided_by, change.decision_note


def test_approve_and_reject_record_the_decision(ops_env: dict[str, str]) -> None:
    approve_id, reject_id = _pending_change(ops_env), _pending_change(ops_env)

    approved = cli(ops_env, "approvals", "approve", str(approve_id), "--by", "alice", "--note", "worn out")
    rejected = cli(ops_env, "approvals", "reject", str(reject_id), "--by", "bob")

    assert approved.returncode == 0 and f"change {approve_id}: approved" in approved.stdout, approved.stderr
    assert rejected.returncode == 0 and f"change {reject_id}: rejected" in rejected.stdout, rejected.stderr
    assert _decision(ops_env, approve_id) == ("approved", "alice", "worn out")
    assert _decision(ops_env, reject_id) == ("rejected", "bob", None)
    again = cli(ops_env, "approvals", "reject", str(approve_id))
    assert again.returncode == 1 and "is approved" in again.stderr
