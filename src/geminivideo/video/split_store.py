"""A split transcode's parts in the object store, for jobs whose media are ``s3://`` (hosts that share no disk).

Layout, under the job's output prefix (its ``output_url``'s folder, else OUTPUT_URL, else the ``s3://`` input's
folder: always a bucket in STORAGE_BUCKETS)::

    split-<job id>/source0000.mkv …   the splitter's stream-copied parts
    split-<job id>/part0000.mkv …     the encoded parts, one per segment task

Every task works in a folder of its own in TEMP_DIR (``split-<job id>-<step>-<random>``), held in the in-use
registry while it runs and removed when it ends; the cleanup knows the ``split-`` prefix, so a killed worker's
folder goes once it is older than CLEANUP_PARTIAL_AGE_S. The prefix in the store lives as long as the job's plan
record in Redis: ``split_transcode.discard`` deletes both (after the stitch, a failure or a cancel), and the daily
cleanup deletes ``split-`` prefixes whose job has no record any more (``sweep_orphans``): under OUTPUT_URL and
under every folder a job put its prefix in (``split_store_bases`` in Redis, each folder scored by when a job last
used it, so a job's own ``output_url`` folder is swept too; a folder no job used for a day is forgotten).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import redis
from botocore.client import BaseClient

from geminivideo.config import get_settings
from geminivideo.contracts import TranscodeJob
from geminivideo.errors import GeminiVideoError
from geminivideo.storage import transfer
from geminivideo.storage.client import s3_client
from geminivideo.storage.errors import ObjectMissing, storage_error
from geminivideo.storage.uri import ObjectUri, allowed, is_uri, parse
from geminivideo.video.workspace import scratch_dir

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "split-"
BASES_KEY = "split_store_bases"  # sorted set: folders that split- prefixes went under, scored by their last use
TRANSFER_THREADS = 4  # the splitter's parts go up a few at a time: the round trips overlap


def _folder_of(uri: ObjectUri) -> ObjectUri:
    """The prefix an object lies in (``s3://b/jobs/r1/out.webm`` → ``s3://b/jobs/r1/``)."""
    if uri.is_prefix:
        return uri
    head, _, _ = uri.key.rpartition("/")
    return ObjectUri(uri.bucket, f"{head}/" if head else "")


def scratch_prefix(job: TranscodeJob, job_id: str) -> ObjectUri | None:
    """Where the job's parts go in the store; None when the job reads and writes local files only."""
    output_url = job.output_url or get_settings().output_url
    if output_url:
        base = _folder_of(allowed(output_url, field="output_url" if job.output_url else "OUTPUT_URL"))
    elif is_uri(job.input_path):
        base = _folder_of(allowed(job.input_path, field="input_path"))
    else:
        return None
    return ObjectUri(base.bucket, f"{base.key}{SCRATCH_PREFIX}{job_id}/")  # base.key is "" or ends with "/"


def remember_base(client: redis.Redis, prefix: ObjectUri) -> None:
    """Note the folder ``prefix`` (a job's ``split-<job id>/``) lies in, so the daily sweep looks there too."""
    client.zadd(BASES_KEY, {str(_folder_of(ObjectUri(prefix.bucket, prefix.key.rstrip("/")))): time.time()})


def prefix_of(raw: str) -> ObjectUri:
    uri = parse(raw, field="split prefix")
    return uri if uri.is_prefix else ObjectUri(uri.bucket, uri.key + "/")


@contextlib.contextmanager
def task_folder(job_id: str, step: str) -> Iterator[Path]:
    """A private TEMP_DIR folder for one step of a split job, held in use while it runs, removed however it ends."""
    with scratch_dir(f"{SCRATCH_PREFIX}{job_id}-{step}") as folder:
        yield folder


def upload_all(files: Sequence[Path], prefix: ObjectUri, *, task_id: str) -> None:
    """Store each file under ``prefix`` by its name (verified uploads, a few in parallel)."""
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(lambda path: transfer.upload(path, prefix.join(path.name), task_id=task_id), files))


def download_all(names: Sequence[str], prefix: ObjectUri, folder: Path) -> None:
    """Fetch each ``prefix/name`` into ``folder/name`` (verified downloads, a few in parallel)."""
    def one(name: str) -> Path:
        return transfer.download(prefix.join(name), folder / name, field="split part")

    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(one, names))


def delete(prefix: ObjectUri) -> int:
    deleted = transfer.delete_prefix(prefix)
    log.info("split transcode: deleted %d objects under %s", deleted, prefix)
    return deleted


def _newest_change(client: BaseClient, bucket: str, key: str) -> datetime | None:
    newest: datetime | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            newest = item["LastModified"] if newest is None else max(newest, item["LastModified"])
    return newest


def _bases(client: redis.Redis) -> list[ObjectUri]:
    """OUTPUT_URL's folder and every remembered one whose bucket is still allowed."""
    output_url = get_settings().output_url
    bases = [_folder_of(allowed(output_url, field="OUTPUT_URL"))] if output_url else []
    for raw in client.zrange(BASES_KEY, 0, -1):
        try:
            base = allowed(str(raw), field="split base")
        except GeminiVideoError:  # STORAGE_BUCKETS no longer names its bucket: nothing of ours may be touched
            continue
        if base not in bases:
            bases.append(base)
    return bases


def sweep_orphans(client: redis.Redis, live: Callable[[str], bool], *, forget_after_s: float,
                  older_than_s: float | None = None) -> int:
    """Delete ``split-<job id>/`` prefixes (under OUTPUT_URL and the remembered folders) whose job is not ``live``
    and that nothing changed for ``older_than_s`` (default CLEANUP_PARTIAL_AGE_S); return how many went. Then
    forget the folders no job used for ``forget_after_s`` plus that age: every job there is over and swept."""
    age = get_settings().cleanup_partial_age_s if older_than_s is None else older_than_s
    started, swept, failed = time.time(), 0, []
    for base in _bases(client):
        try:
            swept += _sweep_base(base, live, age)
        except ObjectMissing:  # its bucket is gone, and with it every part that was there
            client.zrem(BASES_KEY, str(base))
        except GeminiVideoError as exc:  # the other folders are still swept; this one again tomorrow
            failed.append(exc)
    client.zremrangebyscore(BASES_KEY, "-inf", started - forget_after_s - age)
    if failed:
        raise failed[0]
    return swept


def _sweep_base(base: ObjectUri, live: Callable[[str], bool], age: float) -> int:
    client = s3_client()
    now, swept = datetime.now(UTC), 0
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=base.bucket, Prefix=base.key + SCRATCH_PREFIX, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                key = str(common["Prefix"])
                job_id = key[len(base.key) + len(SCRATCH_PREFIX):].rstrip("/")
                if live(job_id):
                    continue
                newest = _newest_change(client, base.bucket, key)
                if newest is None or (now - newest).total_seconds() >= age:
                    delete(ObjectUri(base.bucket, key))
                    swept += 1
    except transfer.TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(base), action="list split scratch under") from None
    return swept
