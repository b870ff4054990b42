"""A video task's media in the object store: s3:// inputs fetched into its scratch folder, outputs published.

``task_media(task_id, output_url)`` opens the scope for one task attempt. Inside it:

- ``fetch_input(uri, field)`` (called by ``video.media.resolve_input`` for any ``s3://`` input) checks
  the bucket, downloads the object once per attempt into a private folder in TEMP_DIR (held in the
  in-use registry so cleanup leaves it alone while the task runs) and returns the local path, which then
  goes through the same probe and demuxer policy as a local file;
- ``storage.outputs.publish_result(media, result, job)`` uploads the verified outputs when OUTPUT_URL or
  the job's ``output_url`` is set.

The folder is removed when the scope ends, however the task ends. Render probes its scenes from a thread
pool, so the scope is also visible process-wide (a prefork child runs one task at a time).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from geminivideo.config import get_settings
from geminivideo.errors import InputNotAllowed
from geminivideo.storage import transfer
from geminivideo.storage.uri import object_uri

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
STAGING_PREFIX = "s3in-"


@dataclass
class TaskMedia:
    task_id: str
    output_url: str | None
    fetched: dict[str, Path] = field(default_factory=dict)
    folder: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def scratch(self) -> Path:
        """The attempt's download folder, created on the first s3:// input (local-only tasks never make one)."""
        with self._lock:
            if self.folder is None:
                from geminivideo.video.housekeeping.inuse import (
                    in_use,  # the video app's registry; ML tasks never get here
                )

                root = get_settings().temp_dir
                root.mkdir(parents=True, exist_ok=True)
                folder = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
                folder.mkdir()
                self._exit.enter_context(in_use(folder))
                self.folder = folder
            return self.folder

    def fetch(self, raw: str, field_name: str) -> Path:
        uri = object_uri(raw, field=field_name)
        with self._lock:
            lock = self._locks.setdefault(str(uri), threading.Lock())
        with lock:  # two fields naming the same object share one download
            if str(uri) not in self.fetched:
                name = _SAFE.sub("_", uri.name)[-120:] or "object"
                dest = self.scratch() / f"{len(self.fetched)}-{name}"
                self.fetched[str(uri)] = transfer.download(uri, dest, field=field_name)
            return self.fetched[str(uri)]

    def source_of(self, local: str) -> str:
        """The URI a staged local path came from (results name what the caller gave, not our scratch)."""
        for uri, path in self.fetched.items():
            if str(path) == local:
                return uri
        return local

    def close(self) -> None:
        try:
            self._exit.close()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)


_current: ContextVar[TaskMedia | None] = ContextVar("geminivideo_task_media", default=None)
_process_current: list[TaskMedia] = []


def current() -> TaskMedia | None:
    return _current.get() or (_process_current[-1] if _process_current else None)


@contextlib.contextmanager
def task_media(task_id: str, output_url: str | None = None) -> Iterator[TaskMedia]:
    media = TaskMedia(task_id=task_id, output_url=output_url)
    token = _current.set(media)
    _process_current.append(media)
    try:
        yield media
    finally:
        _process_current.remove(media)
        _current.reset(token)
        media.close()


def fetch_input(raw: str, field_name: str) -> Path:
    """Local copy of the ``s3://`` input ``raw`` for the running task; errors name ``field_name``."""
    media = current()
    if media is None:
        raise InputNotAllowed(f"{field_name}: {raw} is an s3:// URI, which only a video task can read "
                              "(submit the job to a worker)")
    return media.fetch(raw, field_name)
