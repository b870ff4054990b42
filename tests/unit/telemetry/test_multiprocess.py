"""A host's metrics folder counts every process that ever wrote to it; a dead process's live gauges go.

Real processes: each child switches prometheus_client to multiprocess mode, counts, sets a live gauge and
exits or is killed, the way a prefork pool child does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from geminivideo.telemetry.exporter import reap_dead_processes, render

CHILD = """
import sys, time
from pathlib import Path
from geminivideo.telemetry import metrics as m
m.enable_multiprocess(Path(sys.argv[1]))
found = m.metrics()
found.tasks_succeeded.labels("transcode_task", "transcode_queue").inc()
found.tasks_running.labels("transcode_task", "transcode_queue").inc()
print("ready", flush=True)
time.sleep(60)
"""


def start_child(folder: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ})
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def series(folder: Path, name: str) -> float:
    for line in render(folder).decode().splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_killed_processes_keep_their_counts_and_lose_their_live_gauges(tmp_path: Path) -> None:
    children = [start_child(tmp_path), start_child(tmp_path)]
    try:
        assert series(tmp_path, "geminivideo_tasks_succeeded_total") == 2
        assert series(tmp_path, "geminivideo_tasks_running") == 2
        children[0].send_signal(signal.SIGKILL)
        children[0].wait(timeout=10)
        assert reap_dead_processes(tmp_path) == [children[0].pid]
        assert series(tmp_path, "geminivideo_tasks_running") == 1
        assert series(tmp_path, "geminivideo_tasks_succeeded_total") == 2  # the dead child still counts
        replacement = start_child(tmp_path)
        children.append(replacement)
        time.sleep(0.1)
        assert series(tmp_path, "geminivideo_tasks_succeeded_total") == 3
        assert reap_dead_processes(tmp_path) == []
    finally:
        for child in children:
            child.kill()
            child.wait(timeout=10)
