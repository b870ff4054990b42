"""The daily cleanup on every video host, not on the one worker the broker happened to give it to.

Beat sends one ``cleanup_task(all_hosts=True)``. The worker that takes it asks every video worker, by a
broadcast control command (``gv_host``), which host it is on and which folders it cleans; it then sends
``cleanup_task`` to one worker per distinct (host, folders) through that worker's own direct queue
(``worker_direct``: ``<nodename>.dq2``), and cleans its own host itself. Each host thus cleans its own
TEMP_DIR, RENDER_DIR and PREVIEW_DIR, aborts its stale multipart uploads and deletes the store parts of split
transcodes whose job is gone (under OUTPUT_URL); workers sharing a host and folders are cleaned once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.utils.nodenames import worker_direct
from celery.worker.control import control_command

from geminivideo.config import get_settings
from geminivideo.contracts import CleanupJob, CleanupResult, TaskName
from geminivideo.errors import GeminiVideoError
from geminivideo.storage import housekeeping
from geminivideo.video.housekeeping import cleanup

log = logging.getLogger(__name__)

HOST_COMMAND = "gv_host"
REPLY_TIMEOUT_S = 2.0
DISPATCH_EXPIRES_S = 3600  # a host that is gone for an hour gets the next day's run instead


def host_identity() -> dict[str, Any]:
    """This worker's host name and the folders it cleans (what makes two workers the same host)."""
    from geminivideo.video.housekeeping.resources import hostname  # psutil only when asked

    settings = get_settings()
    return {"host": hostname(settings), "dirs": [str(p.resolve()) for p in settings.work_dirs]}


@control_command()
def gv_host(state: Any) -> dict[str, Any]:
    """Control command: answer this worker's host identity (runs in the worker's main process)."""
    return host_identity()


def identity_key(identity: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    return str(identity.get("host")), tuple(identity.get("dirs") or ())


def other_hosts(replies: list[dict[str, Any]], own: Mapping[str, Any]) -> dict[tuple[str, tuple[str, ...]], str]:
    """One worker node name per distinct host identity, the asking worker's own host left out."""
    chosen: dict[tuple[str, tuple[str, ...]], str] = {}
    mine = identity_key(own)
    for reply in replies:
        for nodename, identity in reply.items():
            if not isinstance(identity, dict) or "host" not in identity:
                continue  # a worker of an older release: no answer to gv_host
            key = identity_key(identity)
            if key != mine:
                chosen.setdefault(key, nodename)
    return chosen


def dispatch_to_other_hosts(app: Celery, kwargs: Mapping[str, Any]) -> list[str]:
    """Send ``cleanup_task(**kwargs)`` to one worker on each other host; return the node names reached."""
    replies = app.control.broadcast(HOST_COMMAND, reply=True, timeout=REPLY_TIMEOUT_S) or []
    targets = other_hosts(replies, host_identity())
    for nodename in targets.values():
        app.send_task(str(TaskName.CLEANUP), kwargs=dict(kwargs), queue=worker_direct(nodename),
                      expires=DISPATCH_EXPIRES_S)
    if targets:
        log.info("cleanup: sent to %d other hosts: %s", len(targets), ", ".join(sorted(targets.values())))
    return sorted(targets.values())


def _sweep_split_scratch() -> None:
    """Split transcodes' parts in the store whose job is gone (a killed stitch): the disk rule, for the store."""
    from geminivideo.redis_client import get_redis
    from geminivideo.video import split_store, split_transcode

    client = get_redis()
    swept = split_store.sweep_orphans(client, lambda job_id: split_transcode.is_live(client, job_id),
                                      forget_after_s=split_transcode.PLAN_TTL_S)
    if swept:
        log.info("cleanup: deleted the store parts of %d finished split transcodes", swept)


def cleanup_host(app: Celery, job: CleanupJob) -> CleanupResult:
    """This host's cleanup (its folders, then its stale multipart uploads), handed on first when ``all_hosts``."""
    reached = dispatch_to_other_hosts(app, job.model_dump(exclude={"all_hosts"})) if job.all_hosts else []
    result = cleanup.cleanup(job)
    aborted, failed = 0, list(result.failed)
    if not job.dry_run:
        try:
            aborted = housekeeping.abort_stale_uploads()
            _sweep_split_scratch()
        except GeminiVideoError as exc:  # the disk is clean already; the store is swept again tomorrow
            failed.append(f"object store: {exc}")
    return result.model_copy(update={"host": host_identity()["host"], "aborted_uploads": aborted,
                                     "dispatched_to": reached, "failed": failed})
