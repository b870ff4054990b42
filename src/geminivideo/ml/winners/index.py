"""The FAISS winner index on disk: cosine search over stable int64 ids, atomic saves, reload on change.

Layout of ``WINNER_INDEX_PATH`` (a directory):

    winners.faiss            the index: ``IndexIDMap2`` over ``IndexFlatIP`` (384-d unit vectors)
    winners.lock             writers hold an exclusive ``flock`` on it for a whole read-modify-write
    .winners.faiss.tmp-<pid> a save in progress (removed by the next writer if its writer died)

A save serialises the index, writes it to a temporary file in the same directory, fsyncs it, renames it
over ``winners.faiss`` and fsyncs the directory: a reader sees the old index or the new one, never a
half-written file, whatever happens to the writer. The lock is a kernel ``flock``, so a writer that is
killed releases it at once (no stale lock to expire). Readers never lock: they keep the loaded index and
reload when the file's identity (inode, size, mtime, ctime) changes.

With ``INDEX_URL`` set, each save is also published to the object store as a new version plus a pointer
written last (``storage.index``); writers start from the pointer's version and readers on every host load
it and reload when the pointer changes, so search answers the same everywhere.

The flat index is exact and supports ``remove_ids``; ``bench/winners.py`` compares it with HNSW.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from geminivideo.errors import ModelUnavailable, OutOfSpace, ProcessingFailed, ResourceBusy
from geminivideo.ml.winners.embeddings import EMBEDDING_DIM

log = logging.getLogger(__name__)

INDEX_FILE = "winners.faiss"
LOCK_FILE = "winners.lock"
TMP_PREFIX = f".{INDEX_FILE}.tmp-"
DEFAULT_LOCK_TIMEOUT_S = 60.0
_WRITE_CHUNK = 4 << 20
_ID_MASK = (1 << 63) - 1

Ids = npt.NDArray[np.int64]


_threads_set_in: int | None = None


def faiss_module() -> ModuleType:
    """The faiss module (using ``FAISS_NUM_THREADS`` threads), or ModelUnavailable naming the package to install."""
    global _threads_set_in
    try:
        import faiss
    except ImportError as exc:
        raise ModelUnavailable(
            f"faiss is not installed ({exc}); install it with: pip install 'geminivideo-workers[ml]' (faiss-cpu)"
        ) from None
    if _threads_set_in != os.getpid():
        from geminivideo.config import get_settings

        faiss.omp_set_num_threads(get_settings().faiss_num_threads)
        _threads_set_in = os.getpid()
    return faiss


def vector_id_for(ad_id: str) -> int:
    """A stable positive int64 id for an ad: the same on every host and every rebuild."""
    value = int.from_bytes(hashlib.sha256(ad_id.encode()).digest()[:8], "big") & _ID_MASK
    return value or 1


def new_index(dim: int = EMBEDDING_DIM) -> Any:
    faiss = faiss_module()
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def ids_of(index: Any) -> Ids:
    """Every id stored in ``index`` (an IndexIDMap2)."""
    return np.asarray(faiss_module().vector_to_array(index.id_map), dtype=np.int64)


def upsert(index: Any, ids: Iterable[int], vectors: npt.NDArray[np.float32]) -> None:
    """Put ``vectors`` under ``ids``, replacing any vector already stored there (never a duplicate)."""
    id_array = np.fromiter(ids, dtype=np.int64)
    if len(id_array) != len(vectors):
        raise ValueError(f"{len(id_array)} ids for {len(vectors)} vectors")
    if len(id_array) == 0:
        return
    index.remove_ids(id_array)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), id_array)


def remove(index: Any, ids: Iterable[int]) -> int:
    """Remove ``ids``; returns how many vectors were removed."""
    id_array = np.fromiter(ids, dtype=np.int64)
    return int(index.remove_ids(id_array)) if len(id_array) else 0


def search(
    index: Any, queries: npt.NDArray[np.float32], k: int, allowed_ids: Ids | None = None
) -> list[list[tuple[int, float]]]:
    """The ``k`` best (id, cosine) per query; ``allowed_ids`` restricts the search inside FAISS."""
    faiss = faiss_module()
    if index.ntotal == 0 or k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
        return [[] for _ in range(len(queries))]
    params = None
    if allowed_ids is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal), params=params)
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]


@dataclass(frozen=True)
class FileIdentity:
    """What changes whenever ``winners.faiss`` is replaced (a rename brings a new inode)."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class IndexStore:
    """The index files under one directory: locked writes, atomic saves and a reloading reader."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.index_path = directory / INDEX_FILE
        self.lock_path = directory / LOCK_FILE
        self._reader_lock = threading.Lock()
        self._cached: tuple[Any, Any] | None = None  # (file identity or remote pointer, index)

    # ── writers ──────────────────────────────────────────────────────────────────────────────────
    @contextlib.contextmanager
    def write_lock(self, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the writers' lock; ResourceBusy (retried) when another writer keeps it past ``timeout_s``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd, timeout_s)
            self._remove_stale_temp_files()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _acquire(self, fd: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ResourceBusy(f"another writer holds {self.lock_path} for over {timeout_s:.0f} s") from None
                time.sleep(0.05)

    def _remove_stale_temp_files(self) -> None:
        # Only called under the lock: any temporary file now belongs to a writer that died mid-save.
        for stale in self.directory.glob(f"{TMP_PREFIX}*"):
            log.warning("removing %s left by an interrupted save", stale)
            stale.unlink(missing_ok=True)

    def load_for_write(self, *, recover: bool = False) -> Any:
        """The index on disk (empty when none). A damaged file raises, or with ``recover`` is set aside.

        With INDEX_URL the starting point is the version the store's pointer names (another host may
        have saved since this one did)."""
        remote = _remote()
        pointer = remote.pointer(max_age_s=0) if remote else None
        if remote is not None and pointer is not None:
            return self._read(remote.fetch(pointer, self.directory))
        if not self.index_path.exists():
            return new_index()
        try:
            return self._read(self.index_path)
        except ProcessingFailed:
            if not recover:
                raise
            aside = self.index_path.with_name(f"{INDEX_FILE}.damaged-{int(time.time())}")
            os.replace(self.index_path, aside)
            log.error("%s could not be read; moved to %s and rebuilding from the database", self.index_path, aside)
            return new_index()

    def save(self, index: Any) -> None:
        """Write ``index`` atomically (temp file, fsync, rename, fsync of the directory)."""
        faiss = faiss_module()
        self.directory.mkdir(parents=True, exist_ok=True)
        data = memoryview(faiss.serialize_index(index))
        tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}"
        try:
            with open(tmp, "wb") as handle:
                for start in range(0, len(data), _WRITE_CHUNK):
                    handle.write(data[start : start + _WRITE_CHUNK])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.index_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise OutOfSpace(f"no space left to save the winner index in {self.directory}") from None
            raise
        _fsync_directory(self.directory)
        remote = _remote()
        if remote is not None:  # the new version, then the pointer: every host's readers follow
            remote.publish(self.index_path)
        with self._reader_lock:
            # The writer keeps mutating its own object; readers get a fresh copy from the file.
            self._cached = None

    # ── readers ──────────────────────────────────────────────────────────────────────────────────
    def current(self) -> Any:
        """The latest saved index, reloaded when another process replaced the file (empty when none).

        With INDEX_URL: the version the store's pointer names, reloaded when the pointer changes."""
        remote = _remote()
        if remote is not None:
            return self._current_remote(remote)
        identity = FileIdentity.of(self.index_path)
        with self._reader_lock:
            if self._cached is not None and self._cached[0] == identity:
                return self._cached[1]
        index = new_index() if identity is None else self._read(self.index_path)
        with self._reader_lock:
            self._cached = (identity, index)
        return index

    def _current_remote(self, remote: Any) -> Any:
        pointer = remote.pointer()
        with self._reader_lock:
            if self._cached is not None and self._cached[0] == pointer:
                return self._cached[1]
        index = new_index() if pointer is None else self._read(remote.fetch(pointer, self.directory))
        with self._reader_lock:
            self._cached = (pointer, index)
        return index

    @staticmethod
    def _read(path: Path) -> Any:
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ProcessingFailed(f"winner index {path} is unreadable ({exc}); rerun auto_index_winners") from None
        if index.d != EMBEDDING_DIM or not isinstance(index, faiss.IndexIDMap2):
            raise ProcessingFailed(f"winner index {path} is not a {EMBEDDING_DIM}-d IndexIDMap2 (d={index.d})")
        return index


def _remote() -> Any:
    """The object-store side of the index when INDEX_URL is set (storage.index.RemoteIndex), else None."""
    from geminivideo.config import get_settings

    if not get_settings().index_url:
        return None
    from geminivideo.storage.index import remote_index  # boto3 only when asked

    return remote_index()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_stores: dict[tuple[int, Path], IndexStore] = {}
_stores_lock = threading.Lock()


def get_store(directory: Path | None = None) -> IndexStore:
    """This process's store for ``directory`` (default: WINNER_INDEX_PATH), so its reader cache is shared."""
    if directory is None:
        from geminivideo.config import get_settings

        directory = get_settings().winner_index_path
    key = (os.getpid(), directory.resolve())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = IndexStore(key[1])
        return _stores[key]
