"""Encoder choice and arguments: codec × container matrix, presets, CRF/bitrate, audio per container.

One speed vocabulary (x264's preset names, ``ultrafast`` … ``veryslow``) works for every codec and is
mapped to each encoder's own knob (NVENC ``p1``–``p7``, libvpx deadline/cpu-used, SVT-AV1 presets), so a
caller does not have to know four encoders. Validation raises before FFmpeg runs, naming the field and
listing what would be accepted.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from geminivideo.errors import InvalidPayload, UnsupportedOption

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEFAULT_PRESET = "veryfast"

# Which video codecs each container can carry (WebM allows only VP8/VP9/AV1 by its specification).
CONTAINER_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("h264", "h265", "vp9", "av1"),
    "webm": ("vp9", "av1"),
    "mkv": ("h264", "h265", "vp9", "av1"),
}
MUXERS = {"mp4": "mp4", "webm": "webm", "mkv": "matroska"}
# What ffprobe calls each codec of the contract.
PROBE_NAMES = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "av1"}

_CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "h264_nvenc": (0, 51), "hevc_nvenc": (0, 51),
              "libvpx-vp9": (0, 63), "libsvtav1": (1, 63), "libaom-av1": (0, 63)}
_DEFAULT_CRF = {"libx264": 23, "libx265": 28, "h264_nvenc": 23, "hevc_nvenc": 28, "libvpx-vp9": 33,
                "libsvtav1": 35, "libaom-av1": 35}
_NVENC_PRESETS = dict(zip(PRESETS, ("p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7"), strict=True))
_VP9_SPEED = dict(zip(PRESETS, (("realtime", 8), ("realtime", 7), ("realtime", 6), ("good", 5), ("good", 4),
                                ("good", 3), ("good", 2), ("good", 1), ("good", 0)), strict=True))
_SVT_PRESETS = dict(zip(PRESETS, (12, 11, 10, 9, 8, 7, 6, 5, 4), strict=True))
_AOM_SPEED = dict(zip(PRESETS, (8, 8, 7, 6, 5, 4, 3, 2, 1), strict=True))
# SVT-AV1 first: about 5x faster than libaom at similar quality here (field notes); rav1e is too slow to offer.
AV1_ENCODERS = ("libsvtav1", "libaom-av1")

_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
MIN_BITRATE_BPS = 16_000
MAX_BITRATE_BPS = 200_000_000


@functools.cache
def available_encoders() -> frozenset[str]:
    """The encoders this FFmpeg build offers (asked once per process)."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30,
                          check=False)
    names = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def check_pair(codec: str, container: str) -> None:
    """Refuse a codec the container cannot carry, listing the valid choices."""
    allowed = CONTAINER_CODECS[container]
    if codec not in allowed:
        homes = [c for c, codecs in CONTAINER_CODECS.items() if codec in codecs]
        raise UnsupportedOption(
            f"output_format: codec {codec!r} cannot go in container {container!r}; {container} takes "
            f"{', '.join(allowed)}, and {codec} goes in {', '.join(homes)}"
        )


def software_encoder(codec: str, available: frozenset[str] | None = None) -> str:
    """The CPU encoder for a codec; for AV1 the fastest good one this build has."""
    available = available_encoders() if available is None else available
    candidates = {"h264": ("libx264",), "h265": ("libx265",), "vp9": ("libvpx-vp9",), "av1": AV1_ENCODERS}[codec]
    for name in candidates:
        if name in available:
            return name
    raise UnsupportedOption(f"output_format.codec: this FFmpeg has no encoder for {codec} (needs one of "
                            f"{', '.join(candidates)})")


def parse_bitrate(text: str, field: str = "output_format.bitrate") -> int:
    """``"2500k"``, ``"2.5M"`` or ``"2500000"`` → bits per second, within sane bounds."""
    match = _BITRATE.match(text.strip())
    if not match:
        raise InvalidPayload(f"{field}: {text!r} is not a bitrate; use e.g. '2500k' or '4M'")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    bps = int(float(match.group(1)) * scale)
    if not MIN_BITRATE_BPS <= bps <= MAX_BITRATE_BPS:
        raise InvalidPayload(f"{field}: {text!r} is outside 16k–200M bits per second")
    return bps


@dataclass(frozen=True)
class RateControl:
    """Constant quality (crf) or a target bitrate; exactly one is set after ``rate_control``."""

    crf: int | None
    bitrate_bps: int | None


def rate_control(encoder: str, crf: int | None, bitrate: str | None, prefix: str = "output_format") -> RateControl:
    if crf is not None and bitrate is not None:
        raise InvalidPayload(f"{prefix}: give crf (constant quality) or bitrate (target rate), not both")
    if bitrate is not None:
        return RateControl(None, parse_bitrate(bitrate, f"{prefix}.bitrate"))
    low, high = _CRF_RANGE[encoder]
    if crf is not None and not low <= crf <= high:
        raise InvalidPayload(f"{prefix}.crf: {crf} is outside {low}–{high} for {encoder}")
    return RateControl(_DEFAULT_CRF[encoder] if crf is None else crf, None)


def check_preset(encoder: str, preset: str | None, prefix: str = "output_format") -> str:
    """A preset name of the shared ladder; SVT-AV1 also takes its own numbers 0–13."""
    preset = preset or DEFAULT_PRESET
    if preset in PRESETS or (encoder == "libsvtav1" and preset.isdigit() and int(preset) <= 13):
        return preset
    extra = " or a number 0-13" if encoder == "libsvtav1" else ""
    raise InvalidPayload(f"{prefix}.preset: {preset!r} is not a preset for {encoder}; choose one of "
                         f"{', '.join(PRESETS)}{extra}")


def _bitrate_args(bps: int, *, capped: bool = True) -> list[str]:
    # Capped VBR: peaks up to 1.5× the target, a two-second-ish buffer at the target rate.
    args = ["-b:v", str(bps)]
    return [*args, "-maxrate", str(bps * 3 // 2), "-bufsize", str(bps * 2)] if capped else args


def _x26x(preset: str, rate: RateControl) -> list[str]:
    args = ["-preset", preset]
    return args + (["-crf", str(rate.crf)] if rate.bitrate_bps is None else _bitrate_args(rate.bitrate_bps))


def _nvenc(preset: str, rate: RateControl, gpu: int | None) -> list[str]:
    args = ["-preset", _NVENC_PRESETS[preset], "-rc", "vbr"] + (["-gpu", str(gpu)] if gpu is not None else [])
    if rate.bitrate_bps is None:
        return [*args, "-cq", str(rate.crf), "-b:v", "0"]
    return args + _bitrate_args(rate.bitrate_bps)


def _vp9(preset: str, rate: RateControl) -> list[str]:
    deadline, cpu_used = _VP9_SPEED[preset]
    args = ["-deadline", deadline, "-cpu-used", str(cpu_used), "-row-mt", "1"]
    if rate.bitrate_bps is None:
        return [*args, "-crf", str(rate.crf), "-b:v", "0"]  # -b:v 0 selects libvpx's constant-quality mode
    return args + _bitrate_args(rate.bitrate_bps)


def _av1(encoder: str, preset: str, rate: RateControl) -> list[str]:
    if encoder == "libsvtav1":
        args = ["-preset", preset if preset.isdigit() else str(_SVT_PRESETS[preset])]
        # SVT-AV1 1.4 honours maxrate only in capped-CRF mode, so a bitrate is a plain VBR target here.
        return args + (["-crf", str(rate.crf)] if rate.bitrate_bps is None else
                       _bitrate_args(rate.bitrate_bps, capped=False))
    args = ["-cpu-used", str(_AOM_SPEED[preset]), "-row-mt", "1"]
    if rate.bitrate_bps is None:
        return [*args, "-crf", str(rate.crf), "-b:v", "0"]
    return args + _bitrate_args(rate.bitrate_bps)


def video_args(encoder: str, preset: str, rate: RateControl, *, gpu: int | None = None) -> list[str]:
    """``-c:v`` and the encoder's own options for one output stream."""
    if encoder in ("libx264", "libx265"):
        specific = _x26x(preset, rate)
        if encoder == "libx265":
            specific += ["-x265-params", "log-level=error"]
    elif encoder in ("h264_nvenc", "hevc_nvenc"):
        specific = _nvenc(preset, rate, gpu)
    elif encoder == "libvpx-vp9":
        specific = _vp9(preset, rate)
    else:
        specific = _av1(encoder, preset, rate)
    return ["-c:v", encoder, *specific]


def container_args(container: str, codec: str) -> list[str]:
    """Muxer options: fast start for MP4, the ``hvc1`` tag players expect for H.265 in MP4."""
    args = ["-f", MUXERS[container]]
    if container == "mp4":
        args += ["-movflags", "+faststart"]
        if codec == "h265":
            args += ["-tag:v", "hvc1"]
    return args


def audio_codec_for(container: str, codec: str) -> str:
    """AAC where MP4 players expect it, Opus for WebM; MKV follows the video codec's usual companion."""
    if container == "webm" or (container == "mkv" and codec in ("vp9", "av1")):
        return "opus"
    return "aac"


def audio_args(audio_codec: str) -> list[str]:
    if audio_codec == "opus":
        # libopus takes 48 kHz (and a few lower rates) and mono/stereo without a mapping family.
        return ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    return ["-c:a", "aac", "-b:a", "128k"]


def join_args(*groups: Sequence[str]) -> list[str]:
    return [arg for group in groups for arg in group]
