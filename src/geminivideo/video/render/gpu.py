"""GPU encoding: pick the NVIDIA GPU with most free memory (NVML) and prove NVENC works on it.

``h264_nvenc`` is compiled into most FFmpeg builds even where no driver or NVENC engine exists (and
data-centre GPUs such as the H100 have none), so the only reliable probe is a real tiny encode. It runs
once per worker process and GPU, then the answer is cached.

The chosen GPU is passed to the encoder with ``-gpu N``; only that FFmpeg child gets
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA's ordinals follow NVML's PCI order. The worker's own
environment is never changed (other tasks in the process may use CUDA differently).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from geminivideo.errors import GeminiVideoError
from geminivideo.video.encoders import available_encoders
from geminivideo.video.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)

NVENC_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
NVENC_FOR = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GpuInfo:
    index: int  # NVML index: PCI bus order, as nvidia-smi shows it
    uuid: str
    name: str
    free_bytes: int


@dataclass(frozen=True)
class GpuPick:
    index: int  # NVML index, reported to the user as gpu_id
    cuda_ordinal: int  # what FFmpeg's -gpu takes in this process's CUDA view


@dataclass(frozen=True)
class EncoderDecision:
    """The video encoder a job will use, and why the GPU was not used when it was asked for."""

    encoder: str
    gpu: GpuPick | None = None
    fallback_reason: str | None = None

    @property
    def used_gpu(self) -> bool:
        return self.encoder.endswith("_nvenc")

    @property
    def env(self) -> dict[str, str] | None:
        return NVENC_ENV if self.encoder.endswith("_nvenc") else None


def list_gpus() -> tuple[list[GpuInfo], str | None]:
    """Every NVIDIA GPU NVML sees with its free memory, or an empty list and the reason."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"NVML unavailable ({exc})"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo(index, _text(pynvml.nvmlDeviceGetUUID(handle)),
                                _text(pynvml.nvmlDeviceGetName(handle)), int(memory.free)))
        return gpus, None if gpus else "no NVIDIA GPU found"
    except pynvml.NVMLError as exc:
        return [], f"NVML query failed ({exc})"
    finally:
        pynvml.nvmlShutdown()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def visible_order(gpus: Sequence[GpuInfo], visible: str | None) -> list[GpuInfo]:
    """The GPUs CUDA will see, in CUDA ordinal order, honouring CUDA_VISIBLE_DEVICES (indices or UUIDs)."""
    if visible is None:
        return list(gpus)
    by_index = {str(g.index): g for g in gpus}
    ordered = []
    for token in (t.strip() for t in visible.split(",")):
        if not token:
            continue
        match = by_index.get(token) or next((g for g in gpus if g.uuid.startswith(token)), None)
        if match is None:
            break  # CUDA stops at the first invalid entry
        ordered.append(match)
    return ordered


def pick_gpu(gpus: Sequence[GpuInfo], visible: str | None) -> GpuPick | None:
    """The visible GPU with most free memory (ties: lowest index)."""
    candidates = visible_order(gpus, visible)
    if not candidates:
        return None
    best = max(enumerate(candidates), key=lambda item: (item[1].free_bytes, -item[1].index))
    return GpuPick(index=best[1].index, cuda_ordinal=best[0])


@functools.cache
def nvenc_probe(encoder: str, cuda_ordinal: int | None) -> str | None:
    """None when a tiny real encode on that GPU succeeds, else the reason (cached per process)."""
    if encoder not in available_encoders():
        return f"this FFmpeg has no {encoder} encoder"
    gpu = ["-gpu", str(cuda_ordinal)] if cuda_ordinal is not None else []
    try:
        run_ffmpeg(["-f", "lavfi", "-i", "color=c=black:s=256x144:r=25:d=0.2", "-frames:v", "3",
                    "-c:v", encoder, *gpu, "-f", "null", "-"], timeout_s=PROBE_TIMEOUT_S,
                   what=f"{encoder} test encode", env=NVENC_ENV)
    except GeminiVideoError as exc:
        return f"{encoder} test encode failed: {encoder_complaint(str(exc))}"
    return None


def encoder_complaint(report: str) -> str:
    """The most telling line of FFmpeg's error output: the encoder's own words when it said something."""
    lines = [line.strip() for line in report.strip().splitlines() if line.strip()]
    own = [line.split("]", 1)[1].strip() for line in lines if line.startswith("[") and "nvenc" in line.split("]")[0]]
    return own[0] if own else (lines[-1] if lines else "no error output")


def choose_encoder(codec: str, software: str, use_gpu: bool) -> EncoderDecision:
    """NVENC on the GPU with most free memory when asked for and working, otherwise ``software``."""
    if not use_gpu:
        return EncoderDecision(software)
    nvenc = NVENC_FOR.get(codec)
    if nvenc is None:
        return EncoderDecision(software, fallback_reason=f"no NVIDIA encoder for {codec}")
    gpus, nvml_problem = list_gpus()
    pick = pick_gpu(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpus and pick is None:
        return EncoderDecision(software, fallback_reason="CUDA_VISIBLE_DEVICES hides every GPU")
    problem = nvenc_probe(nvenc, pick.cuda_ordinal if pick else None)
    if problem is None:
        return EncoderDecision(nvenc, gpu=pick)
    reason = f"{nvml_problem}; {problem}" if nvml_problem else problem
    log.info("GPU encoding unavailable, using %s: %s", software, reason)
    return EncoderDecision(software, fallback_reason=reason)
