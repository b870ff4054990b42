"""Input path policy: every path a task reads must resolve, after symlinks, inside MEDIA_ROOTS.

Checked before FFmpeg runs, so a task can never be pointed at /etc/passwd, a device or a FIFO. An
``s3://`` input is downloaded into the task's scratch folder first (storage.staging) and then checked the same way.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

from geminivideo.config import get_settings
from geminivideo.errors import InputNotAllowed, MediaUnreadable
from geminivideo.storage.staging import fetch_input
from geminivideo.storage.uri import is_uri


def media_roots() -> list[Path]:
    return [root.resolve() for root in get_settings().media_roots]


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_input(path: str | Path, *, field: str = "video_path", roots: Sequence[Path] | None = None) -> Path:
    """Return the real path of an input file, or raise naming ``field`` and the problem.

    Refused: relative paths, paths resolving outside the roots (``..``, symlinks out), anything that is
    not a regular file (directories, FIFOs, devices, sockets), empty files.
    """
    raw = str(path)
    if not raw or "\x00" in raw:
        raise InputNotAllowed(f"{field}: empty path or NUL byte in path")
    if is_uri(raw):  # s3://bucket/key: fetched into the task's scratch folder, then checked like a local file
        return resolve_input(fetch_input(raw, field), field=field, roots=[get_settings().temp_dir.resolve()])
    candidate = Path(raw)
    if not candidate.is_absolute():
        raise InputNotAllowed(f"{field}: {raw!r} must be an absolute path inside the media roots")
    allowed = list(roots) if roots is not None else media_roots()
    resolved = candidate.resolve(strict=False)
    if not _inside(resolved, allowed):
        shown = ", ".join(str(r) for r in allowed)
        raise InputNotAllowed(f"{field}: {raw!r} resolves outside the allowed media roots ({shown})")
    try:
        info = resolved.stat()
    except FileNotFoundError:
        raise MediaUnreadable(f"{field}: file not found: {raw}") from None
    except OSError as exc:
        raise MediaUnreadable(f"{field}: cannot read {raw}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputNotAllowed(f"{field}: {raw!r} is not a regular file")
    if info.st_size == 0:
        raise MediaUnreadable(f"{field}: {raw!r} is an empty file")
    return resolved


def ensure_output_dir(directory: Path) -> Path:
    """Create an output folder; refuse one outside the roots (a misconfigured RENDER_DIR, say)."""
    resolved = directory.resolve()
    if not _inside(resolved, media_roots()):
        raise InputNotAllowed(f"output folder {directory} is outside MEDIA_ROOTS")
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved
