"""`geminivideo demo`, end to end, exactly as `make demo` runs it (python -m geminivideo.cli demo).

Given no Redis at REDIS_URL and an empty SQLite path, when the demo runs, then it starts its own Redis,
workers and API, every step succeeds (render, preview with sprite, H.265 and VP9, captions, a signed
HubSpot batch, the fatigue monitor, the winner index), the outputs exist, and no process it started is left.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.demo import demo_env, demo_processes, media_dirs, run_demo
from tests.support.env import TestEnv as _TestEnv


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_nothing_running(test_env: _TestEnv, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    dirs = media_dirs(root)
    env = demo_env(test_env, root)  # embedded defaults: the demo signs with a secret of its own
    assert not demo_processes(), "a previous demo run left processes behind"

    result = run_demo(env, root)

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
