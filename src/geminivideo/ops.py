"""The worker families of DESIGN.md §3 and the small checks the start scripts and compose healthchecks run.

``python -m geminivideo.ops plan`` prints one line per family (name, app, queues, concurrency, hostname,
max tasks per child) for ``scripts/start-workers.sh``; ``redis-check``, ``wait-ready`` and ``beat-health``
are the checks it and the compose files use. Queue lists come from ``contracts`` (most urgent first), so the
scripts never spell a queue name themselves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER, QueueName
from geminivideo.security.masking import mask

APPS = {"video": "geminivideo.video.celery_app:app", "ml": "geminivideo.ml.celery_app:app"}


@dataclass(frozen=True)
class WorkerFamily:
    """One kind of worker process: which app, which queues, how many pool processes."""

    name: str
    app: str
    queues: tuple[QueueName, ...]
    concurrency: int
    hostname: str
    max_tasks_per_child: int

    @property
    def env_var(self) -> str:
        """The variable that overrides this family's concurrency (e.g. RENDER_CONCURRENCY)."""
        return f"{self.name.upper()}_CONCURRENCY"


def _video(name: str, queue: QueueName, concurrency: int, max_tasks: int) -> WorkerFamily:
    # Every video worker also takes `maintenance` first: its tasks take milliseconds and each host
    # needs its own cleanup and resource snapshots.
    queues = tuple(q for q in VIDEO_QUEUE_ORDER if q in (QueueName.MAINTENANCE, queue))
    return WorkerFamily(name, "video", queues, concurrency, f"{name}@%h", max_tasks)


# Recycling pool children bounds FFmpeg/Whisper memory growth; a render child is replaced most often.
FAMILIES: tuple[WorkerFamily, ...] = (
    WorkerFamily("ml", "ml", ML_QUEUE_ORDER, 4, "ml-worker@%h", 1000),
    _video("render", QueueName.RENDER, 2, 10),
    _video("preview", QueueName.PREVIEW, 4, 100),
    _video("transcode", QueueName.TRANSCODE, 2, 20),
    _video("caption", QueueName.CAPTION, 1, 50),
)


def family(name: str) -> WorkerFamily:
    for item in FAMILIES:
        if item.name == name:
            return item
    raise KeyError(f"unknown worker family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def print_plan() -> None:
    for item in FAMILIES:
        queues = ",".join(str(q) for q in item.queues)
        print(item.name, item.app, APPS[item.app], queues, item.concurrency, item.hostname, item.max_tasks_per_child)


def redis_check(url: str, timeout_s: float = 3.0) -> int:
    """0 when Redis at ``url`` answers PING, else 1 with a message saying how to start one."""
    from geminivideo import procs

    if procs.redis_answers(url, timeout_s):
        return 0
    print(f"Redis does not answer at {mask(url)}: start it (redis-server, or `docker compose up -d redis`) "
          "or point REDIS_URL at a running one", file=sys.stderr)
    return 1


def _alive(pid: int | None) -> bool:
    from geminivideo.procs import pid_alive

    return pid is None or pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_ready(broker_url: str, targets: Sequence[str], timeout_s: float) -> int:
    """Wait until every worker answers ``inspect ping``; print the ones that never did and return 1.

    A target is ``hostname`` or ``hostname=pid``; with a pid, a worker that already exited is given up on
    at once instead of at the timeout.
    """
    from celery import Celery

    pids = {name: int(pid) if pid else None for name, _, pid in (t.partition("=") for t in targets)}
    probe = Celery("geminivideo-probe", broker=broker_url, set_as_current=False)
    pending = set(pids)
    deadline = time.monotonic() + timeout_s
    try:
        while pending and time.monotonic() < deadline:
            if not all(_alive(pids[name]) for name in pending):
                break
            try:
                replies = probe.control.ping(destination=sorted(pending), timeout=1.0)
            except Exception as exc:  # broker trouble while workers start is just "not yet"
                print(f"waiting for the broker: {exc}", file=sys.stderr)
                time.sleep(1)
                continue
            pending -= {name for reply in replies for name in reply}
    finally:
        probe.close()
    for name in sorted(pending):
        print(name)
    return 1 if pending else 0


def beat_health(redis_url: str, app: str) -> int:
    """0 when a beat of ``app`` holds RedBeat's lock (it is refreshed every loop and expires in 30 s)."""
    import redis

    key = f"redbeat:{app}::lock"
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        held = client.exists(key) == 1
    except redis.RedisError as exc:
        print(f"beat check: Redis at {redis_url} did not answer: {exc}", file=sys.stderr)
        return 1
    if not held:
        print(f"beat check: no {app} beat holds {key} (none running, or it stopped ticking)", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m geminivideo.ops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plan", help="print the worker families, one per line")
    check = sub.add_parser("redis-check", help="exit 1 unless Redis answers")
    # URLs come from the environment by default: a password in argv is visible to every user in `ps`.
    check.add_argument("url", nargs="?", default=None, help="Redis URL (default: REDIS_URL)")
    ready = sub.add_parser("wait-ready", help="wait until workers answer inspect ping")
    ready.add_argument("--broker", default=None, help="broker URL (default: CELERY_BROKER_URL or REDIS_URL)")
    ready.add_argument("--timeout", type=float, default=60.0)
    ready.add_argument("targets", nargs="+", metavar="HOSTNAME[=PID]")
    beat = sub.add_parser("beat-health", help="exit 1 unless a beat of the app holds its RedBeat lock")
    beat.add_argument("--app", choices=sorted(APPS), required=True)
    beat.add_argument("--redis", default=None, help="Redis URL (default: REDIS_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        print_plan()
        return 0
    from geminivideo.config import get_settings

    if args.command == "redis-check":
        return redis_check(args.url or get_settings().redis_url)
    if args.command == "wait-ready":
        return wait_ready(args.broker or get_settings().broker_url, args.targets, args.timeout)

    return beat_health(args.redis or get_settings().redis_url, args.app)


if __name__ == "__main__":
    sys.exit(main())
