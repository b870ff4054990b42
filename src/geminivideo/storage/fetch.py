"""Downloading a finished job's stored outputs for a person or a service (``geminivideo fetch``).

Each object is streamed through a freshly presigned URL into a hidden partial file next to its target,
checked against the SHA-256 recorded at upload, then renamed: an interrupted fetch never leaves a file
that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from geminivideo.contracts import StoredObject
from geminivideo.errors import DependencyUnavailable, PermanentError
from geminivideo.storage.outputs import fresh_links

CHUNK = 1024 * 1024
TIMEOUT_S = 60.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

OnBytes = Callable[[StoredObject, int], None]


def local_name(item: StoredObject) -> str:
    name = _SAFE.sub("_", item.name).lstrip(".")
    return name or "output"


def fetch_one(item: StoredObject, folder: Path, on_bytes: OnBytes) -> Path:
    target = folder / local_name(item)
    partial = folder / f".{target.name}.part"
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", item.download_url, timeout=TIMEOUT_S) as reply:
            if reply.status_code != 200:
                raise PermanentError(f"{item.url}: the store answered HTTP {reply.status_code} to its presigned URL")
            with partial.open("wb") as out:
                for chunk in reply.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    on_bytes(item, len(chunk))
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DependencyUnavailable(f"{item.url}: download failed ({type(exc).__name__})") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != item.sha256:
        partial.unlink(missing_ok=True)
        raise PermanentError(f"{item.url}: downloaded SHA-256 {digest.hexdigest()} differs from the stored "
                             f"{item.sha256}")
    os.replace(partial, target)
    return target


def fetch_outputs(objects: list[StoredObject], folder: Path, on_bytes: OnBytes = lambda item, n: None) -> list[Path]:
    """Fetch every object into ``folder`` (created) through newly presigned URLs; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    return [fetch_one(item, folder, on_bytes) for item in fresh_links(objects)]
