"""Helpers shared by the benchmark scripts in ``bench/``.

The scripts run from the repository root as ``.venv/bin/python -m bench.<name>``, so ``bench``, ``tests`` (the
media and speech helpers they share with the tests) and the installed ``geminivideo`` import without any
``sys.path`` edit. Importing this module has no side effects: it starts nothing, reads no
settings and changes neither ``os.environ`` nor ``sys.path``; ``geminivideo`` settings and ``psutil`` are
imported inside the functions that need them.

What is here:

- the private stack of the video benchmarks: a temporary folder, a private redis-server, the folders and
  environment of a worker (:func:`bench_env`), this process pointed at them (:func:`use_client_env`), all in
  :func:`video_bench`; and one real worker on it (:func:`start_bench_worker`);
- CPU time of a worker's pool (:func:`pool_cpu_s`) and of this process's reaped children
  (:func:`children_cpu_s`), and the plain-against-worker loop that alternates which side goes first
  (:func:`alternate_sides`, :func:`timed_command`, :func:`timed_task`);
- reporting: :func:`print_table`, :func:`machine_info`, :func:`write_results` / :func:`write_json`;
- the ``--quick`` / ``--output`` options of a smoke run, which never overwrites ``bench/results``
  (:func:`add_run_options`, :func:`apply_quick`, :func:`output_path`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geminivideo.procs import ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"

#: The four lists :func:`alternate_sides` fills, in this order.
SIDE_KEYS = ("plain_s", "plain_cpu_s", "worker_s", "worker_cpu_s")


# ─── environment ──────────────────────────────────────────────────────────────────────────────────
def bench_env(work: Path, redis_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a bench worker: this process's own, with temp/render/preview folders and a
    ``media`` folder (all created) under ``work`` as the media roots, ``redis_url`` as broker and a SQLite
    database in ``work``; ``extra`` is added last but one (before ``PYTHONUNBUFFERED``)."""
    dirs = {"TEMP_DIR": work / "tmp", "RENDER_DIR": work / "renders", "PREVIEW_DIR": work / "previews"}
    for path in [*dirs.values(), work / "media"]:
        path.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ, **{key: str(path) for key, path in dirs.items()},
        "MEDIA_ROOTS": ":".join(str(p) for p in [*dirs.values(), work / "media"]),
        "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        **(extra or {}), "PYTHONUNBUFFERED": "1",
    }


def use_client_env(env: Mapping[str, str]) -> None:
    """Point this process (the Celery client, and any planning done in-process) at ``env``: it updates
    ``os.environ``, drops the cached settings and the cached Redis client."""
    from geminivideo.config import get_settings
    from geminivideo.redis_client import reset_redis

    os.environ.update(env)
    get_settings.cache_clear()
    reset_redis()


@contextmanager
def video_bench(prefix: str, extra_env: Mapping[str, str] | None = None) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary folder and a private redis-server, with :func:`bench_env` on them applied to this process
    (:func:`use_client_env`); yields the folder and the environment for workers. Both are gone afterwards."""
    from geminivideo import procs

    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        redis_proc, redis_url = procs.start_redis(data_dir=work / "redis")
        try:
            env = bench_env(work, redis_url, extra_env)
            use_client_env(env)
            yield work, env
        finally:
            redis_proc.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def start_bench_worker(app: str, name: str, queue: str, env: Mapping[str, str], logs: Path,
                       concurrency: int = 1) -> ManagedProcess:
    """One real Celery worker of ``app`` ("video" or "ml") on ``queue``, named ``bench-<name>-<random>``,
    logging to ``logs``; returns once it answers a ping."""
    from geminivideo import procs

    hostname = f"bench-{name}-{uuid.uuid4().hex[:6]}@localhost"
    return procs.start_worker(app, queues=[queue], hostname=hostname, env=env, log_path=logs / f"{hostname}.log",
                              concurrency=concurrency)


# ─── timing ───────────────────────────────────────────────────────────────────────────────────────
def pool_cpu_s(worker: ManagedProcess) -> float:
    """CPU seconds used so far by the worker's pool process and the children it has reaped (FFmpeg,
    ffprobe): less sensitive than wall time to other load on a shared machine."""
    import psutil

    total = 0.0
    for child in psutil.Process(worker.pid).children():
        times = child.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's reaped child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_command(command: Sequence[str], output: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (the plain FFmpeg side); ``output`` is deleted after."""
    cpu, started = children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - started
    output.unlink(missing_ok=True)
    return elapsed, children_cpu_s() - cpu


def timed_task(worker: ManagedProcess, send: Callable[[], Any], timeout_s: float) -> tuple[float, float,
                                                                                           dict[str, Any]]:
    """Wall seconds from ``send()`` (which sends the task and returns its ``AsyncResult``) to the result, and
    CPU seconds of the worker's pool process and its children meanwhile; the result's ``output_path`` is
    deleted after."""
    cpu, started = pool_cpu_s(worker), time.perf_counter()
    result: dict[str, Any] = send().get(timeout=timeout_s)
    elapsed = time.perf_counter() - started
    Path(result["output_path"]).unlink(missing_ok=True)
    return elapsed, pool_cpu_s(worker) - cpu, result


def alternate_sides(runs: int, plain: Callable[[], tuple[float, float]],
                    worker: Callable[[], tuple[float, float, dict[str, Any]]]
                    ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """``runs`` rounds of one ``plain`` and one ``worker`` run, plain first in even rounds and worker first in
    odd ones, so neither side always follows the other (load from other processes falls on both alike).
    Returns the wall and CPU seconds of each side by :data:`SIDE_KEYS`, and the last worker result."""
    sides: dict[str, list[float]] = {key: [] for key in SIDE_KEYS}
    result: dict[str, Any] = {}
    for run in range(runs):
        for side in ("plain", "worker") if run % 2 == 0 else ("worker", "plain"):
            if side == "plain":
                wall, cpu = plain()
            else:
                wall, cpu, result = worker()
            sides[f"{side}_s"].append(wall)
            sides[f"{side}_cpu_s"].append(cpu)
    return sides, result


def medians(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The median of each list of samples, by the same keys."""
    return {key: statistics.median(values) for key, values in samples.items()}


def run_lists(samples: Mapping[str, Sequence[float]], keys: Iterable[str] | None = None) -> dict[str, list[float]]:
    """``runs_<key>``: each run's figure rounded to 3 places, for ``keys`` (all of them by default)."""
    return {f"runs_{key}": [round(t, 3) for t in samples[key]] for key in (samples if keys is None else keys)}


def load_average_1m() -> float:
    """The 1-minute load average, rounded to 2 places."""
    return round(os.getloadavg()[0], 2)


# ─── reporting ────────────────────────────────────────────────────────────────────────────────────
def print_table(header: str, lines: Iterable[str]) -> None:
    """``header``, a rule of dashes as wide as it, then one line each."""
    print(header)
    print("-" * len(header))
    for line in lines:
        print(line)


def machine_info() -> dict[str, Any]:
    """CPU count, Python version and platform of this machine."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def utc_timestamp() -> str:
    """Now, in UTC, as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_json(path: Path | None, document: Any, indent: int = 1) -> None:
    """Write ``document`` as JSON to ``path`` (folders created) and say so; ``path`` None (a smoke run without
    ``--output``) writes nothing."""
    if path is None:
        print("quick run: results not written (pass --output PATH to keep them)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=indent) + "\n")
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    print(f"written {shown}")


def write_results(path: Path | None, rows: list[dict[str, Any]], **sections: Any) -> None:
    """The usual results file: ``{"machine": ..., **sections, "timestamp": ..., "rows": rows}``."""
    write_json(path, {"machine": machine_info(), **sections, "timestamp": utc_timestamp(), "rows": rows})


# ─── smoke runs ───────────────────────────────────────────────────────────────────────────────────
def add_run_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """``--quick`` (a smoke run; ``quick`` says what it shrinks) and ``--output``."""
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {quick} unless given; results are not written unless --output is")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the JSON results (default: bench/results/<name>.json, none with --quick)")


def apply_quick(parser: argparse.ArgumentParser, args: argparse.Namespace, **values: Any) -> None:
    """With ``--quick``, set each option in ``values`` that was left at its default."""
    if args.quick:
        for name, value in values.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)


def output_path(args: argparse.Namespace, default: Path) -> Path | None:
    """Where results go: ``--output`` if given, else nowhere for ``--quick``, else ``default``."""
    if args.output is not None:
        return Path(args.output)
    return None if args.quick else default
