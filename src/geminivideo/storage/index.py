"""The winner index in the object store: immutable versioned objects plus a small pointer written last.

Layout under ``INDEX_URL`` (``s3://bucket/prefix/``)::

    versions/winners-<UTC time>-<sha256[:16]>.faiss   one object per save, never overwritten
    winners.pointer.json                              {"version", "key", "sha256", "size", "written_at"}

A save uploads the new version first and then replaces the pointer, so a reader that sees a pointer always
finds its object whole (S3 PUTs are atomic). Readers on every host load the version the pointer names
(SHA-256 checked) and look at the pointer again at most every ``POINTER_TTL_S``: all hosts answer the same
search once they have seen the same pointer.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geminivideo.config import get_settings
from geminivideo.errors import ProcessingFailed
from geminivideo.storage import transfer
from geminivideo.storage.errors import ObjectMissing
from geminivideo.storage.uri import ObjectUri, allowed

POINTER_NAME = "winners.pointer.json"
POINTER_TTL_S = 2.0


@dataclass(frozen=True)
class Pointer:
    version: str
    key: str
    sha256: str
    size: int

    @classmethod
    def parse(cls, data: bytes, where: str) -> Pointer:
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(str(raw["version"]), str(raw["key"]), str(raw["sha256"]), int(raw["size"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProcessingFailed(f"winner index pointer {where} is not valid JSON with version/key/sha256/size "
                                   f"({exc}); rebuild the index (auto_index_winners)") from None


class RemoteIndex:
    """The versions and the pointer under one INDEX_URL prefix."""

    def __init__(self, prefix: ObjectUri) -> None:
        self.prefix = prefix if prefix.is_prefix else ObjectUri(prefix.bucket, prefix.key + "/")
        self.pointer_uri = self.prefix.join(POINTER_NAME)
        self._lock = threading.Lock()
        self._seen: tuple[float, Pointer | None] | None = None

    def publish(self, index_file: Path) -> Pointer:
        """Upload ``index_file`` as a new version, then point at it."""
        data = index_file.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        version = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{sha[:16]}"
        key = self.prefix.join("versions", f"winners-{version}.faiss")
        transfer.upload(index_file, key, task_id=f"winner-index-{version}")
        pointer = Pointer(version, key.key, sha, len(data))
        body = json.dumps({**pointer.__dict__, "written_at": datetime.now(UTC).isoformat()}).encode()
        transfer.put_bytes(self.pointer_uri, body, content_type="application/json")
        with self._lock:
            self._seen = (time.monotonic(), pointer)
        return pointer

    def pointer(self, *, max_age_s: float = POINTER_TTL_S) -> Pointer | None:
        """The current pointer (None before the first save), read again when older than ``max_age_s``."""
        with self._lock:
            if self._seen is not None and time.monotonic() - self._seen[0] < max_age_s:
                return self._seen[1]
        try:
            found: Pointer | None = Pointer.parse(transfer.get_bytes(self.pointer_uri), str(self.pointer_uri))
        except ObjectMissing:
            found = None
        with self._lock:
            self._seen = (time.monotonic(), found)
        return found

    def fetch(self, pointer: Pointer, folder: Path) -> Path:
        """Download the version ``pointer`` names into ``folder`` (hidden name), SHA-256 checked."""
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f".remote-{pointer.version}.faiss"
        if dest.exists() and transfer.file_digest(dest, "sha256") == pointer.sha256:
            return dest
        partial = folder / f".remote-{pointer.version}.part-{os.getpid()}"
        uri = ObjectUri(self.prefix.bucket, pointer.key)
        transfer.download(uri, partial, field="INDEX_URL", max_bytes=max(pointer.size, 1))
        if transfer.file_digest(partial, "sha256") != pointer.sha256:
            partial.unlink(missing_ok=True)
            raise ProcessingFailed(f"winner index version {uri} does not match its pointer's SHA-256")
        os.replace(partial, dest)
        for old in folder.glob(".remote-*.faiss"):  # earlier versions this host loaded
            if old != dest:
                old.unlink(missing_ok=True)
        return dest


_remotes: dict[tuple[int, str], RemoteIndex] = {}
_remotes_lock = threading.Lock()


def remote_index() -> RemoteIndex | None:
    """This process's RemoteIndex for INDEX_URL, or None when the index is local only."""
    url = get_settings().index_url
    if not url:
        return None
    key = (os.getpid(), url)
    with _remotes_lock:
        if key not in _remotes:
            _remotes[key] = RemoteIndex(allowed(url, field="INDEX_URL"))
        return _remotes[key]
