"""Disk cleanup of the media work dirs (TEMP_DIR, RENDER_DIR, PREVIEW_DIR) for ``cleanup_task``.

One scan, one plan, then (unless it is a dry run) the plan is applied, so a dry run lists exactly what a
real run would delete:

1. age: files not modified for ``max_age_days`` go;
2. size: if the dirs still hold more than ``max_size_gb``, the oldest files go until the total is at most
   80 % of the cap (sizes are apparent file sizes; a GB here is 1024³ bytes);
3. empty sub-folders go, deepest first, when they are older than the age limit or this run emptied them;
   the roots themselves never do.

Safety rules enforced here whatever the configuration says:

- a path held in the in-use registry (``video.inuse``) is never deleted, nor anything inside a held
  folder, nor a folder above a held path; without a readable registry cleanup refuses to run
  (``DependencyUnavailable``, retried later);
- symlinks are never followed: a link is deleted as a link and its target is never touched; folders on
  another filesystem (mount points) are not entered;
- nothing outside the resolved roots is deleted, and a root that is ``/``, a system folder, the home
  folder or a folder above it is refused (``ConfigError``), even if the settings let it through;
- an FFmpeg temp output (``.name.partial-xxxx.ext``) modified within CLEANUP_PARTIAL_AGE_S is being
  written right now and is kept; an older one is an orphan of a killed task and goes even when younger
  than the age limit; the same holds for a task's scratch folder in TEMP_DIR (``render-…``, ``caption-…``)
  and the files in it, which a running task holds in the registry;
- every file is checked again just before it is deleted (same inode and mtime, parent still real, not
  leased meanwhile), so a file touched or leased during the run survives.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

from geminivideo.config import get_settings
from geminivideo.contracts import CleanupJob, CleanupResult, utcnow
from geminivideo.errors import ConfigError, DependencyUnavailable
from geminivideo.video.ffmpeg import is_partial
from geminivideo.video.housekeeping.inuse import IN_USE_KEY, is_in_use, paths_in_use

log = logging.getLogger(__name__)

SIZE_TARGET_FRACTION = 0.8
RESULT_LIST_LIMIT = 1000  # keeps the Celery result small; counts and byte totals stay exact
REGISTRY_REFRESH_S = 5.0  # a long deletion pass re-reads the in-use registry this often
GB = 1024**3
DAY_S = 86_400.0

# Folders shared with the whole system: a cleanup root there would delete other programs' files.
_SYSTEM_DIRS = frozenset(
    Path(p)
    for p in ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
              "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/tmp")
)


# ─── roots ────────────────────────────────────────────────────────────────────────────────────────────
def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry: nothing to compare with
        return None


def checked_roots(configured: Mapping[str, Path]) -> list[Path]:
    """Resolve the configured roots (variable name → path) and refuse any that is too broad to clean.

    Settings validation already refuses ``/`` and the home folder; this check repeats it at run time,
    after symlinks, because a root can be replaced by a link after the worker started.
    """
    home = _home()
    roots: list[Path] = []
    for variable, path in configured.items():
        if not path.is_absolute():
            raise ConfigError(f"{variable}: cleanup root must be an absolute path, got {str(path)!r}")
        real = path.resolve()
        too_broad = real in _SYSTEM_DIRS or (home is not None and home.is_relative_to(real))
        if too_broad:
            raise ConfigError(
                f"{variable}: cleanup refuses {str(path)!r} (resolves to {str(real)!r}): it is a system folder, "
                "the home folder or above it; point it at a dedicated folder such as /tmp/renders"
            )
        roots.append(real)
    return list(dict.fromkeys(roots))


def _outermost(roots: list[Path]) -> list[Path]:
    """Roots not nested in another root: each file is scanned (and counted) once."""
    return [r for r in roots if not any(r != other and r.is_relative_to(other) for other in roots)]


# ─── scan ─────────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class FileEntry:
    """A regular file or a symlink (never followed) found under a root."""

    path: Path  # real parent folder + name: no symlink anywhere above it
    size: int
    mtime: float
    inode: int
    mtime_ns: int
    is_link: bool = False


@dataclass
class Tree:
    """What a scan found: files, sub-folders (with mtime) and how many entries each folder holds."""

    roots: list[Path]
    files: list[FileEntry] = field(default_factory=list)
    dirs: dict[Path, float] = field(default_factory=dict)
    entry_counts: dict[Path, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def scan(roots: Iterable[Path]) -> Tree:
    """Walk the (resolved) roots without following links or crossing into other filesystems."""
    tree = Tree(roots=list(roots))
    for root in _outermost(tree.roots):
        try:
            device = root.stat().st_dev
        except FileNotFoundError:
            continue  # a root that does not exist yet holds nothing to clean
        _scan_root(tree, root, device)
    return tree


def _scan_root(tree: Tree, root: Path, device: int) -> None:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                items = list(listing)
        except OSError as exc:
            tree.errors.append(f"{folder}: {exc.strerror or exc}")
            tree.entry_counts[folder] = 1  # unreadable: treat as not empty
            continue
        tree.entry_counts[folder] = len(items)
        for item in items:
            _scan_item(tree, stack, folder / item.name, item, device)


def _scan_item(tree: Tree, stack: list[Path], path: Path, item: os.DirEntry[str], device: int) -> None:
    try:
        info = item.stat(follow_symlinks=False)
    except FileNotFoundError:
        return  # vanished since the listing
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        if info.st_dev == device:  # a mount point (another filesystem) is never entered nor removed
            tree.dirs[path] = info.st_mtime
            stack.append(path)
    elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        tree.files.append(FileEntry(path, info.st_size, info.st_mtime, info.st_ino, info.st_mtime_ns,
                                    is_link=stat.S_ISLNK(mode)))
    # Sockets, FIFOs and devices are never ours to delete; they keep their folder non-empty.


# ─── plan ─────────────────────────────────────────────────────────────────────────────────────────────
def file_held(path: Path, held: set[Path]) -> bool:
    """Held directly, inside a held folder, or (for a link) pointing at a held path."""
    if not held:
        return False
    return any(path == h or path.is_relative_to(h) for h in held) or is_in_use(path, held)


def dir_held(path: Path, held: set[Path]) -> bool:
    """A folder that is held, inside a held folder, or above a held path must stay."""
    return any(path == h or path.is_relative_to(h) or h.is_relative_to(path) for h in held)


@dataclass(frozen=True)
class Limits:
    max_age_s: float
    max_bytes: float
    partial_age_s: float
    now: float
    scratch_root: Path | None = None  # TEMP_DIR: its task scratch folders follow the partial-output rule


# Folder name prefixes of the per-task scratch folders in TEMP_DIR (workspace.scratch_dir, captions.scratch_dir).
# "s3in-": a task's s3:// inputs (storage.staging.STAGING_PREFIX). "split-": a split transcode's parts
# (split_transcode.SCRATCH_PREFIX), held under the job's id from the split to the stitch, so only a dead job's go.
SCRATCH_PREFIXES = ("render-", "preview-", "transcode-", "caption-", "s3in-", "split-")


def _scratch_folder(path: Path, limits: Limits) -> bool:
    """A task's scratch folder: a running task holds it in the registry, so an unheld one is a killed task's."""
    return (limits.scratch_root is not None and path.parent == limits.scratch_root
            and path.name.startswith(SCRATCH_PREFIXES))


def _temporary(path: Path, limits: Limits) -> bool:
    """An FFmpeg partial output, or a file inside a task's scratch folder."""
    return is_partial(path) or any(_scratch_folder(folder, limits) for folder in path.parents)


@dataclass
class Plan:
    files: list[FileEntry] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    skipped_in_use: int = 0
    size_before: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(f.size for f in self.files)


def plan_cleanup(tree: Tree, held: set[Path], limits: Limits) -> Plan:
    """Decide what goes: age pass, size pass, then empty folders. Pure: touches no file."""
    plan = Plan(size_before=tree.total_bytes)
    kept = {f for f in tree.files if _fresh_partial(f, limits)}
    for entry in tree.files:
        if entry in kept or not _too_old(entry, limits):
            continue
        if file_held(entry.path, held):
            plan.skipped_in_use += 1
        else:
            plan.files.append(entry)
    _size_pass(plan, tree, held, limits, kept)
    plan.dirs = _empty_dirs(tree, plan, held, limits)
    return plan


def _fresh_partial(entry: FileEntry, limits: Limits) -> bool:
    # FFmpeg writes its partial output continuously: a recent mtime means a live encode.
    return _temporary(entry.path, limits) and limits.now - entry.mtime < limits.partial_age_s


def _too_old(entry: FileEntry, limits: Limits) -> bool:
    age_s = limits.now - entry.mtime
    return age_s >= limits.max_age_s or (_temporary(entry.path, limits) and age_s >= limits.partial_age_s)


def _size_pass(plan: Plan, tree: Tree, held: set[Path], limits: Limits, kept: set[FileEntry]) -> None:
    remaining = plan.size_before - plan.freed_bytes
    if remaining <= limits.max_bytes:
        return
    target = limits.max_bytes * SIZE_TARGET_FRACTION
    chosen = set(plan.files)
    for entry in sorted(tree.files, key=lambda f: f.mtime):
        if remaining <= target:
            break
        if entry in chosen or entry in kept:
            continue
        if file_held(entry.path, held):
            plan.skipped_in_use += 1
            continue
        plan.files.append(entry)
        remaining -= entry.size


def _empty_dirs(tree: Tree, plan: Plan, held: set[Path], limits: Limits) -> list[Path]:
    """Folders left empty, deepest first; a folder emptied by this run goes even if recently modified."""
    counts = dict(tree.entry_counts)
    touched: set[Path] = set()
    for entry in plan.files:
        counts[entry.path.parent] = counts.get(entry.path.parent, 1) - 1
        touched.add(entry.path.parent)
    protected = set(tree.roots)
    removed: list[Path] = []
    for folder in sorted(tree.dirs, key=lambda p: len(p.parts), reverse=True):
        if counts.get(folder, 1) != 0 or folder in protected:
            continue
        age_s = limits.now - tree.dirs[folder]
        orphan_scratch = _scratch_folder(folder, limits) and age_s >= limits.partial_age_s
        if not (folder in touched or age_s >= limits.max_age_s or orphan_scratch):
            continue
        if dir_held(folder, held):
            plan.skipped_in_use += 1
            continue
        removed.append(folder)
        counts[folder.parent] = counts.get(folder.parent, 1) - 1
        touched.add(folder.parent)
    return removed


# ─── apply ────────────────────────────────────────────────────────────────────────────────────────────
def read_registry() -> set[Path]:
    """The paths running tasks hold; refuse to go on when the registry cannot be read."""
    try:
        return paths_in_use()
    except redis.RedisError as exc:
        raise DependencyUnavailable(
            f"cleanup refused: the in-use registry ({IN_USE_KEY}) could not be read from REDIS_URL ({exc}); "
            "without it a file that a running task is using could be deleted"
        ) from None


class _Registry:
    """The in-use set, re-read every few seconds while a long deletion pass runs."""

    def __init__(self) -> None:
        self._held = read_registry()
        self._read_at = time.monotonic()

    def held(self) -> set[Path]:
        if time.monotonic() - self._read_at >= REGISTRY_REFRESH_S:
            self._held, self._read_at = read_registry(), time.monotonic()
        return self._held


@dataclass
class Outcome:
    deleted: list[FileEntry] = field(default_factory=list)
    removed_dirs: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_in_use: int = 0


def apply_plan(plan: Plan, roots: list[Path]) -> Outcome:
    """Delete what the plan chose, re-checking each path first; an error on one path does not stop the rest."""
    registry = _Registry()
    outcome = Outcome()
    for entry in plan.files:
        if file_held(entry.path, registry.held()):
            outcome.skipped_in_use += 1
        elif _unchanged(entry, roots):
            _unlink(entry, outcome)
    for folder in plan.dirs:
        if dir_held(folder, registry.held()):
            outcome.skipped_in_use += 1
        elif folder not in roots and _real_inside(folder, roots):
            _rmdir(folder, outcome)
    return outcome


def _real_inside(path: Path, roots: list[Path]) -> bool:
    # The parent must still be the real folder scanned: a folder swapped for a link is not followed.
    parent = path.parent
    return os.path.realpath(parent) == str(parent) and any(path.is_relative_to(r) for r in roots)


def _unchanged(entry: FileEntry, roots: list[Path]) -> bool:
    if not _real_inside(entry.path, roots):
        return False
    try:
        info = entry.path.lstat()
    except FileNotFoundError:
        return False
    # Another inode or a newer mtime: someone replaced or wrote the file since the scan.
    return info.st_ino == entry.inode and info.st_mtime_ns == entry.mtime_ns


def _unlink(entry: FileEntry, outcome: Outcome) -> None:
    try:
        os.unlink(entry.path)  # removes a link itself, never its target
    except FileNotFoundError:
        return
    except OSError as exc:
        outcome.failed.append(f"{entry.path}: {exc.strerror or exc}")
        return
    outcome.deleted.append(entry)


def _rmdir(folder: Path, outcome: Outcome) -> None:
    try:
        os.rmdir(folder)  # only ever removes an empty folder
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:  # refilled since the scan: simply kept
            outcome.failed.append(f"{folder}: {exc.strerror or exc}")
        return
    outcome.removed_dirs.append(folder)


# ─── entry point ──────────────────────────────────────────────────────────────────────────────────────
def cleanup(job: CleanupJob) -> CleanupResult:
    """Run one cleanup of TEMP_DIR, RENDER_DIR and PREVIEW_DIR (defaults from CLEANUP_AGE_DAYS, MAX_TEMP_SIZE_GB)."""
    settings = get_settings()
    max_age_days = settings.cleanup_age_days if job.max_age_days is None else job.max_age_days
    max_size_gb = settings.max_temp_size_gb if job.max_size_gb is None else job.max_size_gb
    roots = checked_roots(
        {"TEMP_DIR": settings.temp_dir, "RENDER_DIR": settings.render_dir, "PREVIEW_DIR": settings.preview_dir}
    )
    held = read_registry()  # before anything else: no registry, no cleanup (not even a dry run)
    tree = scan(roots)
    limits = Limits(max_age_days * DAY_S, max_size_gb * GB, settings.cleanup_partial_age_s, time.time(),
                    scratch_root=settings.temp_dir.resolve())
    plan = plan_cleanup(tree, held, limits)
    if job.dry_run:
        outcome = Outcome(deleted=list(plan.files), removed_dirs=list(plan.dirs))
    else:
        outcome = apply_plan(plan, roots)
    outcome.failed.extend(tree.errors)
    result = _result(job, plan, outcome, roots, max_age_days, max_size_gb)
    log.info("cleanup%s: %d files (%d bytes), %d folders, %d in use skipped, %d failures",
             " (dry run)" if job.dry_run else "", result.deleted_count, result.freed_space_bytes,
             len(outcome.removed_dirs), result.skipped_in_use, len(outcome.failed))
    return result


def _result(
    job: CleanupJob, plan: Plan, outcome: Outcome, roots: list[Path], max_age_days: float, max_size_gb: float
) -> CleanupResult:
    freed = sum(f.size for f in outcome.deleted)
    return CleanupResult(
        deleted_files=[str(f.path) for f in outcome.deleted[:RESULT_LIST_LIMIT]],
        deleted_count=len(outcome.deleted),
        freed_space_bytes=freed,
        freed_space_gb=round(freed / GB, 6),
        skipped_in_use=plan.skipped_in_use + outcome.skipped_in_use,
        max_age_days=max_age_days,
        max_size_gb=max_size_gb,
        dry_run=job.dry_run,
        timestamp=utcnow(),
        removed_dirs=[str(d) for d in outcome.removed_dirs[:RESULT_LIST_LIMIT]],
        failed=outcome.failed[:RESULT_LIST_LIMIT],
        size_before_bytes=plan.size_before,
        size_after_bytes=plan.size_before - freed,
        roots=[str(r) for r in roots],
    )
