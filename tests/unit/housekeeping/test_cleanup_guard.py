"""Cleanup refuses to run when the in-use registry cannot be read: it could not know what is in use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from geminivideo import procs
from geminivideo.contracts import CleanupJob
from geminivideo.errors import DependencyUnavailable, TransientError
from geminivideo.video.housekeeping.cleanup import cleanup
from tests.support.env import applied


def test_unreadable_registry_refuses_cleanup_and_deletes_nothing(tmp_path: Path) -> None:
    dirs = {name: tmp_path / name.lower() for name in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
    old_files = []
    for folder in dirs.values():
        folder.mkdir()
        old = folder / "old.mp4"
        old.write_bytes(b"x" * 64)
        os.utime(old, (time.time() - 90 * 86400,) * 2)
        old_files.append(old)
    dead_redis = f"redis://127.0.0.1:{procs.free_port()}/0"  # a port nothing listens on
    values = {"REDIS_URL": dead_redis, "MEDIA_ROOTS": "", **{k: str(v) for k, v in dirs.items()}}
    with applied(values), pytest.raises(DependencyUnavailable, match="in-use registry") as caught:
        cleanup(CleanupJob(max_age_days=0, dry_run=False))
    assert isinstance(caught.value, TransientError)  # the task retries later instead of failing for good
    assert all(f.exists() for f in old_files)
