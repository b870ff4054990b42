"""One real video worker for the housekeeping tests, with media dirs of its own.

The session's ``video_worker`` consumes ``maintenance`` and works on the session's shared media dirs,
which other tests fill; a cleanup with ``max_age_days=0`` there would delete their files. So these tests
send their tasks to queues of their own (maintenance and render), consumed by this worker only, whose
TEMP_DIR, RENDER_DIR and PREVIEW_DIR are private folders. The tasks, code paths and broker are the
production ones.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from geminivideo import procs
from tests.support.env import TestEnv


@dataclass(frozen=True)
class HousekeepingWorker:
    proc: procs.ManagedProcess
    queue: str
    render_queue: str
    roots: dict[str, Path]
    resource_hostname: str

    @property
    def temp_dir(self) -> Path:
        return self.roots["TEMP_DIR"]

    @property
    def render_dir(self) -> Path:
        return self.roots["RENDER_DIR"]

    @property
    def preview_dir(self) -> Path:
        return self.roots["PREVIEW_DIR"]


@pytest.fixture(scope="package")
def housekeeping_worker(test_env: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HousekeepingWorker]:
    base = tmp_path_factory.mktemp("housekeeping").resolve()
    roots = {name: base / name.lower() for name in ("TEMP_DIR", "RENDER_DIR", "PREVIEW_DIR")}
    for folder in roots.values():
        folder.mkdir()
    tag = uuid.uuid4().hex[:8]
    queue, render_queue, resource_host = f"maintenance-test-{tag}", f"render-test-{tag}", f"hk-host-{tag}"
    env = test_env.process_env(
        **{name: str(path) for name, path in roots.items()},
        MEDIA_ROOTS=":".join(str(p) for p in roots.values()),
        RESOURCE_HOSTNAME=resource_host,
        RESOURCE_WARN_MEMORY_PERCENT="0.01",  # always exceeded: the warning path runs for real
        RESOURCE_WARN_DISK_PERCENT="0.01",
    )
    hostname = f"housekeeping-{tag}@localhost"
    # Two slots: a cleanup must be able to run while a render holds the other.
    proc = procs.start_worker("video", queues=[queue, render_queue], hostname=hostname, env=env, concurrency=2,
                              log_path=base / "worker.log")
    try:
        yield HousekeepingWorker(proc, queue, render_queue, roots, resource_host)
    finally:
        proc.stop()


@pytest.fixture
def hk(housekeeping_worker: HousekeepingWorker) -> HousekeepingWorker:
    """The housekeeping worker with its media dirs emptied before the test."""
    for root in housekeeping_worker.roots.values():
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    return housekeeping_worker
