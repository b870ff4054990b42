"""Resource limits for FFmpeg and ffprobe children, set in the child between fork and exec.

Untrusted media is parsed by decoders written in C: a decoder bug or a decompression bomb (a 266-byte PNG
that declares a 16000x16000 frame makes FFmpeg allocate 800 MB) must not take the host. Each child gets
an address-space cap (``RLIMIT_AS``), CPU seconds (``RLIMIT_CPU``), a largest file it may write
(``RLIMIT_FSIZE``) and open files (``RLIMIT_NOFILE``). Over the cap an allocation fails and FFmpeg exits
with "Cannot allocate memory", which the caller reports as a permanent failure.

CUDA reserves far more virtual address space than it uses, so GPU encodes (NVENC/CUDA arguments or a
GPU environment) keep every limit except the address space.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MiB = 1024 * 1024
_GPU_MARKERS = ("nvenc", "cuda", "nvdec", "cuvid", "hwaccel")


@dataclass(frozen=True)
class ChildLimits:
    """Limits for one child; None leaves that resource as the worker has it."""

    address_space_bytes: int | None
    cpu_s: int | None
    file_size_bytes: int | None
    open_files: int | None

    def for_command(self, argv: Sequence[str], *, gpu_env: bool = False) -> ChildLimits:
        """These limits, without the address-space cap when the command may use CUDA."""
        if gpu_env or any(marker in arg for arg in argv for marker in _GPU_MARKERS):
            return ChildLimits(None, self.cpu_s, self.file_size_bytes, self.open_files)
        return self


def from_settings(*, probe: bool = False) -> ChildLimits:
    """The configured limits (``FFMPEG_MAX_*``; 0 turns one off). ffprobe only reads: 1/8 of the CPU time."""
    from geminivideo.config import get_settings  # read when a child is started, never at import

    settings = get_settings()
    cpu = settings.ffmpeg_max_cpu_s // 8 if probe else settings.ffmpeg_max_cpu_s
    return ChildLimits(
        address_space_bytes=settings.ffmpeg_max_memory_mb * MiB or None,
        cpu_s=max(cpu, 1) if settings.ffmpeg_max_cpu_s else None,
        file_size_bytes=settings.ffmpeg_max_file_size_mb * MiB or None,
        open_files=settings.ffmpeg_max_open_files or None,
    )


def _pairs(limits: ChildLimits) -> list[tuple[int, int]]:
    wanted = [(resource.RLIMIT_AS, limits.address_space_bytes), (resource.RLIMIT_CPU, limits.cpu_s),
              (resource.RLIMIT_FSIZE, limits.file_size_bytes), (resource.RLIMIT_NOFILE, limits.open_files)]
    return [(which, value) for which, value in wanted if value is not None]


def preexec(limits: ChildLimits, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that applies ``limits`` (never above the worker's own hard limit), then ``then``.

    Everything is computed here, in the parent: between fork and exec only ``setrlimit`` calls run.
    """
    pairs = []
    for which, value in _pairs(limits):
        _soft, hard = resource.getrlimit(which)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        pairs.append((which, capped))

    def _apply() -> None:  # pragma: no cover - runs in the forked child before exec
        for which, value in pairs:
            resource.setrlimit(which, (value, value))
        if then is not None:
            then()

    return _apply
