"""Helpers of the ops tests: an isolated Redis database, generated media, the API in a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from geminivideo import procs
from geminivideo.db.migrate import upgrade

# The ops tests run their own API, workers and beats on this Redis database of the session's private
# server, so a session-wide worker started by another test module never consumes their messages.
OPS_REDIS_DB = 7


def ops_values(redis_url: str, root: Path) -> dict[str, str]:
    """Environment overrides of an isolated ops deployment: own Redis database, own migrated SQLite."""
    base = redis_url.rsplit("/", 1)[0]
    db_url = f"sqlite:///{root / 'ops.db'}"
    upgrade(db_url)
    return {"REDIS_URL": f"{base}/{OPS_REDIS_DB}", "DATABASE_URL": db_url}


def make_video(path: Path, *, seconds: float = 2, size: str = "320x240", audio: bool = True) -> Path:
    """A small test video (FFmpeg test pattern, sine tone) for the jobs to work on."""
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(argv, check=True, timeout=120)
    return path


def start_api(env: Mapping[str, str], log_path: Path, *, wait_healthy: bool = True) -> tuple[procs.ManagedProcess, str]:
    """Serve ``geminivideo.api:app`` with uvicorn on a free loopback port, ready when ``/health`` answers
    (200 unless ``wait_healthy`` is off); return it and its base URL."""
    return procs.start_api(env, log_path, ready_path="/health", require_ok=wait_healthy)


def processes_mentioning(marker: str) -> list[psutil.Process]:
    """Live processes whose command line contains ``marker`` (leak checks), this test process excluded."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmdline and proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout_s:.0f} s")
