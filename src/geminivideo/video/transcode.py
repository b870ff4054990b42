"""Transcode one video to H.264, H.265, VP9 or AV1 in MP4, WebM or MKV.

Steps: check the codec/container pair and the encoder options (before touching the input), resolve and
probe the input, encode into a hidden partial file with progress from FFmpeg, verify it with ffprobe,
rename. The audio codec follows the container (AAC in MP4, Opus in WebM); scaling keeps the aspect ratio.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from geminivideo.config import get_settings
from geminivideo.contracts import TranscodeFormat, TranscodeJob, TranscodeResult, utcnow
from geminivideo.errors import MediaUnreadable, ProcessingFailed
from geminivideo.progress import ProgressCallback, no_progress
from geminivideo.video import encoders
from geminivideo.video.ffmpeg import MediaInfo, atomic_output, input_args, probe
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.media import ensure_output_dir
from geminivideo.video.render import filtergraph as fg
from geminivideo.video.workspace import Deadline, checked_media, run_ffmpeg_within

DURATION_TOLERANCE_S = 0.25


@dataclass(frozen=True)
class TranscodePlan:
    codec: str
    container: str
    encoder: str
    preset: str
    rate: encoders.RateControl
    audio_codec: str


def plan_encoding(fmt: TranscodeFormat) -> TranscodePlan:
    """Everything decidable from the options alone; refuses bad pairs and options before FFmpeg runs."""
    codec, container = fmt.codec.value, fmt.container.value
    encoders.check_pair(codec, container)
    encoder = encoders.software_encoder(codec)
    rate = encoders.rate_control(encoder, fmt.crf, fmt.bitrate)
    preset = encoders.check_preset(encoder, fmt.preset)
    return TranscodePlan(codec, container, encoder, preset, rate, encoders.audio_codec_for(container, codec))


def scale_filter(fmt: TranscodeFormat) -> str | None:
    """Resize keeping the aspect ratio: one side given → the other follows; both → fit inside that box."""
    if fmt.width and fmt.height:
        return fg.filt("scale", w=fmt.width, h=fmt.height, force_original_aspect_ratio="decrease",
                       force_divisible_by=2)
    if fmt.width:
        return fg.filt("scale", w=fmt.width, h=-2)
    if fmt.height:
        return fg.filt("scale", w=-2, h=fmt.height)
    return None


def video_filter(fmt: TranscodeFormat, info: MediaInfo) -> str:
    scale = scale_filter(fmt)
    if scale is None and (info.width % 2 or info.height % 2):
        scale = fg.filt("scale", w="trunc(iw/2)*2", h="trunc(ih/2)*2")  # 4:2:0 needs even sizes
    return ",".join([*([scale] if scale else []), fg.filt("format", fg.OUTPUT_PIX_FMT)])


def output_path(info: MediaInfo, plan: TranscodePlan) -> Path:
    directory = ensure_output_dir(get_settings().render_dir)
    stem = info.path.stem.lstrip(".") or "video"
    return directory / f"{stem}-{plan.codec}-{uuid.uuid4().hex[:12]}.{plan.container}"


def transcode_arguments(info: MediaInfo, fmt: TranscodeFormat, plan: TranscodePlan, target: Path) -> list[str]:
    audio = ["-map", "0:a:0", *encoders.audio_args(plan.audio_codec)] if info.has_audio else ["-an"]
    return [*input_args(info.path), "-map", "0:v:0", "-vf", video_filter(fmt, info),
            *encoders.video_args(plan.encoder, plan.preset, plan.rate), *audio, "-sn", "-dn",
            "-map_metadata", "-1", *encoders.container_args(plan.container, plan.codec), str(target)]


def verify_transcode(path: Path, info: MediaInfo, fmt: TranscodeFormat, plan: TranscodePlan) -> MediaInfo:
    """ffprobe the written file: codec, audio kept, requested size, duration close to the input's."""
    try:
        out = probe(path, require_video=True, require_audio=info.has_audio)
    except MediaUnreadable as exc:
        raise ProcessingFailed(f"transcode wrote an unreadable file: {exc}") from None
    problems = []
    if out.video_codec != encoders.PROBE_NAMES[plan.codec]:
        problems.append(f"video codec {out.video_codec}, expected {encoders.PROBE_NAMES[plan.codec]}")
    if (fmt.width and out.width > fmt.width) or (fmt.height and out.height > fmt.height):
        problems.append(f"size {out.width}x{out.height} exceeds the requested {fmt.width}x{fmt.height}")
    if abs(out.duration - info.duration) > max(DURATION_TOLERANCE_S, 0.02 * info.duration):
        problems.append(f"duration {out.duration:.3f} s, input has {info.duration:.3f} s")
    if problems:
        raise ProcessingFailed("transcode output failed verification: " + "; ".join(problems))
    return out


def transcode(job: TranscodeJob, on_progress: ProgressCallback = no_progress) -> TranscodeResult:
    """Transcode ``job.input_path`` into RENDER_DIR; raise a PermanentError naming the field for bad input."""
    deadline = Deadline(get_settings().transcode_timeout, "TRANSCODE_TIMEOUT")
    fmt = job.output_format
    plan = plan_encoding(fmt)
    info = checked_media(job.input_path, "input_path")
    final = output_path(info, plan)
    on_progress(1, f"transcoding to {plan.codec}/{plan.container} with {plan.encoder}")
    with in_use(info.path), atomic_output(final) as partial, in_use(partial):
        run_ffmpeg_within(deadline, transcode_arguments(info, fmt, plan, partial), what="transcode",
                          expected_duration_s=info.duration, on_progress=on_progress, progress_span=(1, 98))
        on_progress(99, "verifying the output")
        out = verify_transcode(partial, info, fmt, plan)
    return TranscodeResult(
        output_path=str(final), input_path=str(info.path), file_size=final.stat().st_size,
        duration=out.duration, codec=plan.codec, container=plan.container, width=out.width, height=out.height,
        audio_codec=out.audio_codec, encoder=plan.encoder, timestamp=utcnow(),
    )
