"""`geminivideo demo`, end to end, exactly as `make demo` runs it (python -m geminivideo.cli demo).

Given no Redis at REDIS_URL and an empty SQLite path, when the demo runs, then it starts its own Redis,
workers and API, every step succeeds (render, preview with sprite, H.265 and VP9, captions, a signed
HubSpot batch, the fatigue monitor, the winner index), the outputs exist, and no process it started is left.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from geminivideo import procs
from tests.support.env import TestEnv as _TestEnv


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


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_nothing_running(test_env: _TestEnv, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    dirs = {"TEMP_DIR": root / "tmp", "RENDER_DIR": root / "renders", "PREVIEW_DIR": root / "previews"}
    env = test_env.process_env(
        REDIS_URL=f"redis://127.0.0.1:{procs.free_port()}/0",  # nobody answers: the demo starts its own
        DATABASE_URL=f"sqlite:///{root / 'geminivideo.db'}",
        WINNER_INDEX_PATH=str(root / "winner_index"),
        MEDIA_ROOTS=":".join(str(p) for p in dirs.values()),
        COLUMNS="200",
        **{key: str(path) for key, path in dirs.items()},
    )
    env.pop("HUBSPOT_CLIENT_SECRET", None)  # embedded defaults: the demo signs with a secret of its own
    assert not demo_processes(), "a previous demo run left processes behind"

    result = subprocess.run([sys.executable, "-m", "geminivideo.cli", "demo", "--workdir", str(root / "work")],
                            env=env, capture_output=True, text=True, timeout=600)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "12/12 steps succeeded" in output
    assert "(private, pid" in output, "the demo should have started its own Redis"
    renders = dirs["RENDER_DIR"]
    assert len(list(renders.glob("demo-*.mp4"))) == 2, "the render and its H.265 transcode"
    assert list(renders.glob("demo-*.webm")) and list(renders.glob("demo-*.srt")) and list(renders.glob("demo-*.vtt"))
    assert list(dirs["PREVIEW_DIR"].rglob("sprite.*")) and list(dirs["PREVIEW_DIR"].rglob("*.vtt"))
    with sqlite3.connect(root / "geminivideo.db") as db:
        jobs = dict(db.execute("SELECT kind, count(*) FROM video_jobs WHERE status = 'completed' GROUP BY kind"))
    assert jobs == {"render": 1, "preview": 1, "transcode": 2, "caption": 1}
    assert demo_processes() == []
