"""Benchmark of task leases on Redis: how soon a ``kill -9``ed render comes back, and what renewal costs.

Redelivery: two real video workers on a private redis-server; a real ``render_video_task`` starts on the
first, whose whole process group is killed with ``kill -9`` a few seconds into the encode; the second worker
(idle until then) picks the render up. Measured: seconds from the kill to the rerun's ``started`` record.

- ``before``: the code before leases (``git archive`` of the commit before ``geminivideo/leases`` appeared,
  run from a temporary folder): a delivery comes back after its queue's visibility timeout, the longest hard
  limit + VISIBILITY_MARGIN_S. That is 3 840 s with the shipped RENDER_TIMEOUT=3600; to measure it in minutes
  the before-run uses RENDER_TIMEOUT=90 (hard 120 s) and VISIBILITY_MARGIN_S=5: 125 s.
- ``after``: this code with the shipped settings (RENDER_TIMEOUT=3600, LEASE_TIMEOUT_S=60, LEASE_RENEW_S=15):
  the delivery comes back once the dead worker's lease lapses, whatever the time limit.

Renewal cost: one video worker holding N deliveries (``video_ping`` sent with a long countdown: held for
their ETA, unacknowledged, never run during the window), Redis ``INFO commandstats`` read before and after a
window: script calls (EVALSHA: one renewal round trip), ZADDs inside them, and every command, per second.

    .venv/bin/python -m bench.leases [--window 60] [--held 0,50] [--quick]

Prints a table and writes bench/results/leases.json (with the load average: the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS_DIR,
    ROOT,
    add_run_options,
    apply_quick,
    load_average_1m,
    output_path,
    print_table,
    start_bench_worker,
    video_bench,
    write_results,
)
from tests.support import media

RESULTS = RESULTS_DIR / "leases.json"
RENDER_QUEUE, IDLE_QUEUE, PING_QUEUE = "render_queue", "preview_queue", "maintenance"


# ─── the code before leases ───────────────────────────────────────────────────────────────────────
def before_ref() -> str:
    """The commit just before ``geminivideo/leases`` was added on this branch."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "src/geminivideo/leases/__init__.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("cannot find the commit that added src/geminivideo/leases (run from a git checkout)")
    return f"{added[-1]}~1"


@contextlib.contextmanager
def source_tree(ref: str) -> Iterator[Path]:
    """``src/`` of ``ref`` unpacked in a temporary folder (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="gv-before-") as folder:
        archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder) / "src"


# ─── redelivery after kill -9 ─────────────────────────────────────────────────────────────────────
class StartedLog:
    """Times at which each worker published ``started`` for a task (subscribed before the task is sent)."""

    def __init__(self, client: Any, task_id: str) -> None:
        self.starts: list[tuple[float, str]] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(f"task_progress:{task_id}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.2)
            except Exception:  # the bench's Redis is gone: the run is over
                return
            if message is not None and (event := json.loads(message["data"]))["status"] == "started":
                self.starts.append((time.time(), event["message"]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def redelivery_s(variant: str, extra_env: dict[str, str], render_s: float) -> dict[str, Any]:
    """One kill -9 mid-render; seconds from the kill to the rerun's start on the second worker."""
    from celery import Celery

    from geminivideo.redis_client import get_redis

    with video_bench(f"gv-bench-leases-{variant}-", extra_env) as (work, env):
        logs = work / "logs"
        clip = media.make_video(work / "media" / "clip.mp4", duration_s=render_s, size=(320, 180), source="testsrc2")
        victim = start_bench_worker("video", "victim", RENDER_QUEUE, env, logs)
        rescuer = start_bench_worker("video", "rescuer", IDLE_QUEUE, env, logs)
        app = Celery("bench-leases", broker=env["REDIS_URL"], backend=env["REDIS_URL"], set_as_current=False)
        try:
            task_id = str(uuid.uuid4())
            log = StartedLog(get_redis(), task_id)
            job = {"scenes": [{"video_path": str(clip)}], "output_format": {"width": 320, "height": 180, "fps": 25,
                                                                              "preset": "medium"}}
            result = app.send_task("render_video_task", args=[job], queue=RENDER_QUEUE, task_id=task_id)
            wait_until(lambda: log.starts, 120, "the victim's start")
            app.control.add_consumer(RENDER_QUEUE, destination=[str(rescuer.extra["hostname"])], reply=True,
                                     timeout=10)
            time.sleep(3)  # into the encode
            killed_at = time.time()
            victim.signal_group(signal.SIGKILL)
            wait_until(lambda: len(log.starts) >= 2, 4 * 3600, "the rerun's start")
            back_s = log.starts[1][0] - killed_at
            try:
                outcome = "completed" if result.get(timeout=600) else "no result"
            except Exception as exc:  # the rerun's own outcome (a time limit on a loaded machine) is not measured
                outcome = f"{type(exc).__name__}"
            log.close()
            return {"variant": variant, "kill_to_rerun_s": round(back_s, 1), "starts": len(log.starts),
                    "rerun_on": "rescuer" if str(rescuer.extra["hostname"]) in log.starts[1][1] else "other",
                    "rerun_outcome": outcome, "settings": extra_env, "load_avg_1m": load_average_1m()}
        finally:
            app.close()
            for proc in (rescuer, victim):
                proc.stop(timeout_s=10)


# ─── renewal cost ─────────────────────────────────────────────────────────────────────────────────
def commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    calls["total"] = int(client.info("stats")["total_commands_processed"])
    return calls


def renewal_cost(held: int, window_s: float, extra_env: dict[str, str]) -> dict[str, Any]:
    """Redis commands per second of one video worker holding ``held`` ETA deliveries, over ``window_s``."""
    from celery import Celery

    from geminivideo.redis_client import get_redis

    with video_bench("gv-bench-renewal-", extra_env) as (work, env):
        worker = start_bench_worker("video", "holder", PING_QUEUE, env, work / "logs")
        app = Celery("bench-renewal", broker=env["REDIS_URL"], set_as_current=False)
        client = get_redis()
        try:
            for _ in range(held):
                app.send_task("video_ping", queue=PING_QUEUE, countdown=window_s * 10 + 600, ignore_result=True)
            wait_until(lambda: int(client.zcard("unacked_index:video")) >= held, 120, f"{held} held deliveries")
            time.sleep(2)
            first = commandstats(client)
            time.sleep(window_s)
            last = commandstats(client)
            rate = {key: round((last.get(key, 0) - first.get(key, 0)) / window_s, 3) for key in
                    ("evalsha", "zadd", "get", "total")}
            return {"held": held, "window_s": window_s, "per_s": rate, "settings": extra_env,
                    "load_avg_1m": load_average_1m()}
        finally:
            app.close()
            worker.stop(timeout_s=10)


# ─── main ─────────────────────────────────────────────────────────────────────────────────────────
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of the renewal-cost window")
    parser.add_argument("--held", default="0,50", help="held deliveries per renewal-cost run, comma-separated")
    parser.add_argument("--render-s", type=float, default=20.0, help="length of the rendered clip")
    parser.add_argument("--lease", type=float, default=None, help="LEASE_TIMEOUT_S of the after-run (default: shipped)")
    parser.add_argument("--skip-before", action="store_true", help="do not run the code before leases")
    add_run_options(parser, "a 10 s window, leases of 8 s, no before-run")
    args = parser.parse_args()
    apply_quick(parser, args, window=10.0, lease=8.0, skip_before=True)
    # Every setting explicit: video_bench applies each run's environment to this process, and the next run's
    # workers inherit this process's environment.
    after_env = {"PYTHONPATH": str(ROOT / "src"), "RENDER_TIMEOUT": "3600", "VISIBILITY_MARGIN_S": "60",
                 "LEASE_TIMEOUT_S": str(args.lease or 60)}

    rows: list[dict[str, Any]] = []
    if not args.skip_before:
        ref = before_ref()
        with source_tree(ref) as src:
            before_env = {"PYTHONPATH": str(src), "RENDER_TIMEOUT": "90", "VISIBILITY_MARGIN_S": "5"}
            rows.append({**redelivery_s("before", before_env, args.render_s), "code": ref})
    rows.append({**redelivery_s("after", after_env, args.render_s), "code": "this checkout"})
    costs = [renewal_cost(int(n), args.window, after_env) for n in args.held.split(",")]
    for entry in [*rows, *costs]:
        entry["settings"] = {k: v for k, v in entry["settings"].items() if k != "PYTHONPATH"}

    print_table(f"{'redelivery after kill -9':<28} {'kill→rerun s':>12} {'starts':>6}  settings",
                [f"{r['variant']:<28} {r['kill_to_rerun_s']:>12} {r['starts']:>6}  {r['settings']}" for r in rows])
    print_table(f"{'held deliveries':<16} {'EVALSHA/s':>10} {'ZADD/s':>8} {'GET/s':>7} {'all/s':>7}",
                [f"{c['held']:<16} {c['per_s']['evalsha']:>10} {c['per_s']['zadd']:>8} {c['per_s']['get']:>7} "
                 f"{c['per_s']['total']:>7}" for c in costs])
    write_results(output_path(args, RESULTS), rows, renewal=costs, load_avg_1m=load_average_1m())


if __name__ == "__main__":
    main()
