"""scripts/start-workers.sh and scripts/stop-workers.sh, run for real against the test's private Redis.

Given an isolated Redis database and a temporary log folder, when the start script runs, then every worker
answers ping and runs a task from its own queue, a second run starts nothing, and the stop script leaves
no process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from celery import Celery

from geminivideo import procs
from geminivideo.ops import FAMILIES

ROOT = Path(__file__).resolve().parents[3]
START = ROOT / "scripts" / "start-workers.sh"
STOP = ROOT / "scripts" / "stop-workers.sh"
ONE_EACH = {f.env_var: "1" for f in FAMILIES}


def run(script: Path, env: dict[str, str], *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=timeout_s)


def group_members(pids: list[int]) -> list[psutil.Process]:
    """Live processes in any of these process groups (workers' pool children included)."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) in pids and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def read_pids(log_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in log_dir.glob("*.pid")}


@pytest.fixture
def script_env(ops_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**ops_env, **ONE_EACH, "LOG_DIR": str(tmp_path / "logs"), "READY_TIMEOUT": "90", "STOP_TIMEOUT": "30",
           "FLOWER_PORT": str(procs.free_port()), "API_PORT": str(procs.free_port())}
    yield env
    # Whatever a failed assertion left running is stopped by pid, never by name.
    for pid in read_pids(Path(env["LOG_DIR"])).values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_unknown_flag_prints_usage_and_fails(script_env: dict[str, str]) -> None:
    result = run(START, script_env, "--turbo")
    assert result.returncode == 1
    assert "unknown option: --turbo" in result.stderr and "usage:" in result.stderr
    assert run(START, script_env, "--ml-only", "--video-only").returncode == 1
    assert run(START, script_env, "--concurrency", "render=zero").returncode == 1
    assert run(STOP, script_env, "--now").returncode == 1


def test_start_refuses_when_redis_does_not_answer(script_env: dict[str, str]) -> None:
    env = {**script_env, "REDIS_URL": f"redis://127.0.0.1:{procs.free_port()}/0"}
    result = run(START, env)
    assert result.returncode == 1
    assert "Redis does not answer" in result.stderr and "nothing started" in result.stderr
    assert not list(Path(env["LOG_DIR"]).glob("*.pid"))


def _ping_each(env: dict[str, str]) -> dict[str, str]:
    """Send a ping task to each family's own queue; return queue -> hostname that ran it."""
    app = Celery("script-test", broker=env["REDIS_URL"], backend=env["REDIS_URL"], set_as_current=False)
    sends = {"render_queue": "video_ping", "preview_queue": "video_ping", "transcode_queue": "video_ping",
             "caption_queue": "video_ping", "ml-default": "ml_ping"}
    try:
        results = {queue: app.send_task(name, args=[queue], queue=queue) for queue, name in sends.items()}
        return {queue: str(result.get(timeout=60)["hostname"]) for queue, result in results.items()}
    finally:
        app.close()


@pytest.mark.slow
def test_start_run_tasks_restart_and_stop(script_env: dict[str, str]) -> None:
    log_dir, host = Path(script_env["LOG_DIR"]), socket.gethostname()

    # When everything is started
    first = run(START, script_env, "--with-flower", "--with-api", "--concurrency", "render=1")
    assert first.returncode == 0, first.stdout + first.stderr
    pids = read_pids(log_dir)
    expected = {"ml", "render", "preview", "transcode", "caption", "ml-beat", "video-beat", "flower", "api"}
    assert set(pids) == expected
    assert all(os.getpgid(pid) == pid for pid in pids.values()), "each process leads its own group"

    # Then each worker runs a task from its own queue
    ran_on = _ping_each(script_env)
    assert ran_on == {"render_queue": f"render@{host}", "preview_queue": f"preview@{host}",
                      "transcode_queue": f"transcode@{host}", "caption_queue": f"caption@{host}",
                      "ml-default": f"ml-worker@{host}"}
    client = redis.Redis.from_url(script_env["REDIS_URL"])
    assert client.exists("redbeat:ml::lock", "redbeat:video::lock") == 2, "both beats hold their lock"
    client.close()

    # And a second run starts no duplicate
    second = run(START, script_env, "--with-flower", "--with-api")
    assert second.returncode == 0, second.stderr
    assert "0 started, 9 already running" in second.stdout
    assert read_pids(log_dir) == pids

    # When stopped, nothing is left, pid files included
    stopped = run(STOP, script_env)
    assert stopped.returncode == 0, stopped.stderr
    assert all(f"stopped {name}" in stopped.stdout for name in expected)
    assert not list(log_dir.glob("*.pid"))
    assert group_members(list(pids.values())) == []


def test_a_worker_that_fails_is_reported_with_its_log(script_env: dict[str, str]) -> None:
    env = {**script_env, "ML_CONCURRENCY": "many"}  # celery refuses `-c many` at once
    result = run(START, env, "--ml-only")
    assert result.returncode == 1
    assert "ml did not become ready" in result.stderr
    assert "many" in result.stderr, "the log's last lines are shown"
    pids = read_pids(Path(env["LOG_DIR"]))
    assert "ml-beat" in pids, "the beat that did start is left for stop-workers.sh"

    stopped = run(STOP, env)
    assert stopped.returncode == 0
    assert "stale pid file" in stopped.stdout and "stopped ml-beat" in stopped.stdout
    assert group_members(list(pids.values())) == []


def test_scripts_are_shellcheck_clean() -> None:
    result = subprocess.run(["shellcheck", "--severity=style", str(START), str(STOP)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout
