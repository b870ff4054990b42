"""Shared by the tests that kill a worker mid-transfer: a host's own media folders, the environment that makes
a killed task come back quickly, the rescuing worker and the cleanup that must leave the host empty."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from geminivideo import procs
from geminivideo.video.tasks import cleanup_task
from tests.conftest import StartWorker


@dataclass(frozen=True)
class Host:
    root: Path
    env: dict[str, str]

    def folder(self, name: str) -> Path:
        """One of the host's media folders: ``TEMP_DIR``, ``RENDER_DIR`` or ``PREVIEW_DIR``."""
        return Path(self.env[name])

    def files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()]


def killable_host(tmp_path: Path, store_env: dict[str, str], *, transcode_timeout_s: int) -> Host:
    """Media folders of a host of its own, and worker settings under which a killed task is redelivered within
    about a minute (short visibility margin, restore every second) and its in-use lease runs out in 3 s."""
    root = tmp_path / "host"
    dirs = {k: str(root / k.lower()) for k in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
    return Host(root, {**store_env, **dirs, "MEDIA_ROOTS": ":".join(dirs.values()),
                       "TRANSCODE_TIMEOUT": str(transcode_timeout_s), "VISIBILITY_MARGIN_S": "5",
                       "UNACKED_RESTORE_INTERVAL_S": "1", "IN_USE_LEASE_S": "3", "CLEANUP_PARTIAL_AGE_S": "0",
                       "RESOURCE_MONITOR_ON_WORKERS": "false"})


def rescued(start_worker: StartWorker, host: Host, sent: AsyncResult, timeout_s: float) -> dict[str, Any]:
    """Start a second worker on the host (transcodes and maintenance) and wait for the redelivered task."""
    rescuer = start_worker("video", name="rescuer", queues=["maintenance", "transcode_queue"], **host.env)
    try:
        result: dict[str, Any] = sent.get(timeout=timeout_s)  # after transcode_queue's visibility timeout (~50 s)
    except Exception as exc:
        raise AssertionError(f"{exc!r}\n{rescuer.log_tail(40)}") from exc
    return result


def clean_until(done: Callable[[], bool], what: str) -> None:
    """Run the host's cleanup every 2 s until ``done()`` (the killed attempt's lease has to run out first)."""
    procs.wait_until(lambda: (cleanup_task.apply_async(kwargs={}, queue="maintenance").get(timeout=30), done())[1],
                     30, interval_s=2, what=what)
