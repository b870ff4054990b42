"""A writer killed with SIGKILL in the middle of a save leaves the last complete index loadable."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from geminivideo import procs
from geminivideo.ml.winners import index as wi

FIRST, LATER = 20_000, 40_000

# A real writer process: saves an index of FIRST vectors, says so, then keeps saving LATER vectors.
WRITER = f"""
import sys
from pathlib import Path
import numpy as np
from geminivideo.ml.winners import index as wi

store = wi.IndexStore(Path(sys.argv[1]))
vectors = np.random.default_rng(0).standard_normal(({LATER}, 384)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
index = wi.new_index()
with store.write_lock():
    wi.upsert(index, range(1, {FIRST} + 1), vectors[:{FIRST}])
    store.save(index)
    print("first save done", flush=True)
    wi.upsert(index, range({FIRST} + 1, {LATER} + 1), vectors[{FIRST}:])
    while True:
        store.save(index)
"""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed into place between the listing and the stat
        return 0


def _kill_during_a_save(directory: Path, log: Path) -> Path | None:
    """Start the writer, SIGKILL it while a temporary file is being written; return that file."""
    proc = procs.spawn("index-writer", [sys.executable, "-c", WRITER, str(directory)], log_path=log)
    try:
        procs.wait_until(lambda: "first save done" in log.read_text() or not proc.alive(), 60, 0.05, "first save")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.alive():
            partial = [p for p in directory.glob(f"{wi.TMP_PREFIX}*") if _size(p) > 0]
            if partial:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
                return partial[0] if partial[0].exists() else None
            time.sleep(0.002)
        return None
    finally:
        proc.stop(timeout_s=5)


def test_killing_the_writer_mid_save_leaves_a_loadable_index(tmp_path: Path) -> None:
    directory = tmp_path / "winner_index"
    leftover = None
    for attempt in range(5):  # the kill must land inside a write; retry in the unlikely case it did not
        leftover = _kill_during_a_save(directory, tmp_path / f"writer-{attempt}.log")
        if leftover is not None:
            break
    assert leftover is not None, "never caught the writer in the middle of a save"
    # The temporary file is really partial (a complete save holds every vector and id), and readers ignore it.
    assert leftover.stat().st_size < LATER * (384 * 4 + 8)
    index = wi.IndexStore(directory).current()
    assert index.ntotal in (FIRST, LATER)
    assert sorted(wi.ids_of(index).tolist()) == list(range(1, index.ntotal + 1))
    query = np.asarray(index.reconstruct(7), dtype=np.float32).reshape(1, -1)
    assert wi.search(index, query, 1)[0][0][0] == 7

    # The dead writer's lock is gone with it, and the next writer sweeps its temporary file away.
    store = wi.IndexStore(directory)
    with store.write_lock(timeout_s=1):
        assert not leftover.exists()
        reopened = store.load_for_write()
        wi.remove(reopened, [7])
        store.save(reopened)
    assert store.current().ntotal == index.ntotal - 1
