"""Running ``geminivideo demo`` as ``make demo`` does (``python -m geminivideo.cli demo``) on embedded defaults:
a SQLite file and media folders under the test's own root, and a Redis URL nobody answers, so the demo
starts its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from geminivideo import procs
from tests.support.env import TestEnv


def demo_processes() -> list[psutil.Process]:
    """Live processes started by a demo run (they carry GV_DEMO_RUN in their environment)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if "GV_DEMO_RUN" in proc.environ() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def media_dirs(root: Path) -> dict[str, Path]:
    return {"TEMP_DIR": root / "tmp", "RENDER_DIR": root / "renders", "PREVIEW_DIR": root / "previews"}


def demo_env(test_env: TestEnv, root: Path, **extra: str) -> dict[str, str]:
    """The demo's environment under ``root``; no webhook secret (the demo signs with one of its own) and no
    OUTPUT_URL or INDEX_URL (local disk unless ``--storage`` says otherwise)."""
    dirs = media_dirs(root)
    env = test_env.process_env(
        **extra,
        REDIS_URL=f"redis://127.0.0.1:{procs.free_port()}/0",  # nobody answers: the demo starts its own
        DATABASE_URL=f"sqlite:///{root / 'geminivideo.db'}",
        WINNER_INDEX_PATH=str(root / "winner_index"),
        MEDIA_ROOTS=":".join(str(p) for p in dirs.values()),
        COLUMNS="200",
        **{key: str(path) for key, path in dirs.items()},
    )
    for name in ("HUBSPOT_CLIENT_SECRET", "OUTPUT_URL", "INDEX_URL"):
        env.pop(name, None)
    return env


def run_demo(env: dict[str, str], root: Path, *options: str,
             timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the demo to its end with ``root/work`` as its working folder; stdout and stderr are captured."""
    argv = [sys.executable, "-m", "geminivideo.cli", "demo", "--workdir", str(root / "work"), *options]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
