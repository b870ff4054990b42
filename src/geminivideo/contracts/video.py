"""Video task payloads and results (DESIGN.md §5): render, preview, transcode, captions, housekeeping."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from geminivideo.contracts.base import Payload, PositiveSeconds


# ─── Video: render ────────────────────────────────────────────────────────────────────────────────
class VideoCodec(StrEnum):
    H264 = "h264"
    H265 = "h265"
    VP9 = "vp9"
    AV1 = "av1"


class Container(StrEnum):
    MP4 = "mp4"
    WEBM = "webm"
    MKV = "mkv"


class Scene(Payload):
    video_path: str = Field(min_length=1, max_length=4096)
    start_time: PositiveSeconds | None = None
    end_time: PositiveSeconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Scene:
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise ValueError(f"end_time ({self.end_time}) must be greater than start_time ({self.start_time})")
        return self


def _even_size(value: int | None) -> int | None:
    if value is not None and value % 2:
        raise ValueError(f"{value} must be even (4:2:0 video needs even width and height)")
    return value


class RenderOutputFormat(Payload):
    width: int = Field(1920, ge=16, le=7680)
    height: int = Field(1080, ge=16, le=4320)
    fps: float = Field(30, ge=1, le=120)
    codec: Literal["h264", "h265"] = "h264"
    crf: int | None = Field(None, ge=0, le=51)
    bitrate: str | None = Field(None, pattern=r"^\d+(\.\d+)?[kKmM]?$")
    preset: str = Field("veryfast", pattern=r"^[a-z0-9]+$", max_length=16)

    _even = field_validator("width", "height")(_even_size)


class Transition(Payload):
    type: str = Field("fade", pattern=r"^[a-z0-9]+$", max_length=32)
    duration: float = Field(0.5, gt=0, le=5)


class Position(StrEnum):
    TOP_LEFT = "top-left"
    TOP = "top"
    TOP_RIGHT = "top-right"
    CENTER = "center"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM = "bottom"
    BOTTOM_RIGHT = "bottom-right"


class ImageOverlay(Payload):
    type: Literal["image"] = "image"
    path: str = Field(min_length=1, max_length=4096)
    position: Position = Position.TOP_RIGHT
    scale: float = Field(0.2, gt=0, le=1)
    opacity: float = Field(1.0, ge=0, le=1)
    start_time: PositiveSeconds = 0
    end_time: PositiveSeconds | None = None


class TextOverlay(Payload):
    type: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=500)
    position: Position = Position.BOTTOM
    font_size: int = Field(48, ge=6, le=400)
    color: str = Field("white", pattern=r"^(#[0-9a-fA-F]{6}|[a-z]+)$")
    box: bool = True
    opacity: float = Field(1.0, ge=0, le=1)
    start_time: PositiveSeconds = 0
    end_time: PositiveSeconds | None = None


Overlay = Annotated[ImageOverlay | TextOverlay, Field(discriminator="type")]


class SubtitleCue(Payload):
    start: PositiveSeconds
    end: PositiveSeconds
    text: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _ordered(self) -> SubtitleCue:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


# ─── Video: object storage (storage/) ─────────────────────────────────────────────────────────────
_S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
OutputUrl = Annotated[str | None, Field(None, pattern=_S3_URL, max_length=2048)]


class StoredObject(BaseModel):
    """One output in the object store: its URI, a presigned GET URL and what was checked on upload."""

    name: str
    url: str  # s3://bucket/key
    download_url: str  # presigned HTTPS GET, valid PRESIGN_EXPIRY_S from when the result was made
    size: int
    sha256: str
    content_type: str


class RenderJob(Payload):
    scenes: list[Scene] = Field(min_length=1, max_length=100)
    output_format: RenderOutputFormat = Field(default_factory=RenderOutputFormat)
    transitions: bool | Transition | list[Transition] = True
    overlays: list[Overlay] = Field(default_factory=list, max_length=50)
    subtitles: str | list[SubtitleCue] | None = None
    normalize_audio: bool = True
    use_gpu: bool = False
    output_name: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    output_url: OutputUrl = None  # s3://bucket/key or s3://bucket/prefix/ (bucket in STORAGE_BUCKETS)


class RenderResult(BaseModel):
    output_path: str
    file_size: int
    duration: float
    width: int
    height: int
    fps: float
    codec: str
    used_gpu: bool
    gpu_id: int | None = None
    gpu_fallback_reason: str | None = None
    encoder: str | None = None
    timestamp: datetime
    output_url: str | None = None  # the main output's s3:// URI when outputs go to the object store
    download_url: str | None = None  # presigned GET of output_url
    outputs: list[StoredObject] = Field(default_factory=list)


# ─── Video: preview ───────────────────────────────────────────────────────────────────────────────
class PreviewJob(Payload):
    video_path: str = Field(min_length=1, max_length=4096)
    num_frames: int = Field(10, ge=1, le=200)
    width: int = Field(320, ge=16, le=3840)
    format: Literal["jpg", "webp"] = "jpg"
    sprite: bool = False
    output_url: OutputUrl = None


class PreviewResult(BaseModel):
    preview_dir: str
    preview_paths: list[str]
    num_frames: int
    video_duration: float
    sprite_path: str | None = None
    vtt_path: str | None = None
    frame_times: list[float] = Field(default_factory=list)
    frame_width: int | None = None
    frame_height: int | None = None
    timestamp: datetime
    output_url: str | None = None  # the main output's s3:// URI when outputs go to the object store
    download_url: str | None = None  # presigned GET of output_url
    outputs: list[StoredObject] = Field(default_factory=list)


# ─── Video: transcode ─────────────────────────────────────────────────────────────────────────────
class TranscodeFormat(Payload):
    codec: VideoCodec = VideoCodec.H264
    container: Container = Container.MP4
    crf: int | None = Field(None, ge=0, le=63)
    bitrate: str | None = Field(None, pattern=r"^\d+(\.\d+)?[kKmM]?$")
    preset: str | None = Field(None, pattern=r"^[a-z0-9]+$", max_length=16)
    width: int | None = Field(None, ge=16, le=7680)
    height: int | None = Field(None, ge=16, le=4320)

    _even = field_validator("width", "height")(_even_size)


class TranscodeJob(Payload):
    input_path: str = Field(min_length=1, max_length=4096)
    output_format: TranscodeFormat = Field(default_factory=TranscodeFormat)
    output_url: OutputUrl = None


class TranscodeResult(BaseModel):
    output_path: str
    input_path: str
    file_size: int
    duration: float
    codec: str
    container: str
    width: int
    height: int
    audio_codec: str | None = None
    encoder: str | None = None
    timestamp: datetime
    output_url: str | None = None  # the main output's s3:// URI when outputs go to the object store
    download_url: str | None = None  # presigned GET of output_url
    outputs: list[StoredObject] = Field(default_factory=list)
    parts: int | None = None  # a split-and-stitch transcode: how many parts were encoded separately


# ─── Video: captions ──────────────────────────────────────────────────────────────────────────────
CaptionFormat = Literal["srt", "vtt", "json"]
DEFAULT_CAPTION_FORMATS: tuple[CaptionFormat, ...] = ("srt", "vtt")


class CaptionJob(Payload):
    video_path: str = Field(min_length=1, max_length=4096)
    # A size ("base", "tiny.en", "large-v3"), its hub id ("Systran/faster-whisper-base"), or a folder name in
    # WHISPER_MODEL_DIR.
    model: str = Field("base", pattern=r"^[A-Za-z0-9._-]{1,64}(/[A-Za-z0-9._-]{1,96})?$")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")
    formats: list[CaptionFormat] = Field(default_factory=lambda: list(DEFAULT_CAPTION_FORMATS), min_length=1)
    word_timestamps: bool = False  # include per-word timings in the JSON output (cues always use them)
    output_url: OutputUrl = None


class CaptionResult(BaseModel):
    srt_path: str | None
    vtt_path: str | None
    json_path: str | None = None
    language: str
    language_probability: float
    num_segments: int
    duration: float
    model: str
    timestamp: datetime
    num_cues: int = 0
    model_source: str | None = None  # WHISPER_MODEL_DIR, an installed package, the download cache
    device: str | None = None
    compute_type: str | None = None
    model_cached: bool = False  # True when this worker process had the model loaded already
    model_loads: int = 0  # Whisper models this worker process has loaded so far
    model_load_s: float = 0.0
    transcribe_s: float = 0.0
    batched: bool = False  # faster-whisper's batched pipeline (CAPTION_BATCHING) transcribed it
    processing_s: float = 0.0
    worker_pid: int | None = None
    output_url: str | None = None  # the main output's s3:// URI when outputs go to the object store
    download_url: str | None = None  # presigned GET of output_url
    outputs: list[StoredObject] = Field(default_factory=list)


# ─── Video: housekeeping ──────────────────────────────────────────────────────────────────────────
class CleanupJob(Payload):
    max_age_days: float | None = Field(None, ge=0, le=36_500)
    max_size_gb: float | None = Field(None, gt=0, le=1_000_000)
    dry_run: bool = False
    all_hosts: bool = False  # also send it to one worker on every other video host (the daily run does)


class CleanupResult(BaseModel):
    """What a cleanup deleted (or, on a dry run, would delete). The lists stop at 1,000 entries; the counts
    and byte totals are always exact."""

    deleted_files: list[str] | int
    freed_space_bytes: int
    freed_space_gb: float
    skipped_in_use: int
    max_age_days: float
    max_size_gb: float
    dry_run: bool
    timestamp: datetime
    deleted_count: int = 0
    removed_dirs: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    size_before_bytes: int = 0
    size_after_bytes: int = 0
    roots: list[str] = Field(default_factory=list)
    host: str | None = None  # which host's folders these are
    aborted_uploads: int = 0  # stale multipart uploads aborted under OUTPUT_URL / INDEX_URL
    dispatched_to: list[str] = Field(default_factory=list)  # workers on the other hosts that got the run
