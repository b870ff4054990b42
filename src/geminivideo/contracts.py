"""Task names, queue names, priorities and the payload/result models every caller depends on.

This module is the wire contract of DESIGN.md §3, §5 and §6. It imports pydantic only: no Celery, no
FFmpeg, no torch, no faiss, so the API and the CLI can validate payloads cheaply.
Each domain's models live in their own section; change a section only with its domain.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from geminivideo.errors import InvalidPayload


# ─── Names ──────────────────────────────────────────────────────────────────────────────────────────
class TaskName(StrEnum):
    PROCESS_HUBSPOT_WEBHOOK = "process_hubspot_webhook"
    PROCESS_HUBSPOT_EVENTS = "process_hubspot_events"  # a stored batch (what the webhook endpoint sends)
    MONITOR_ALL_ADS_FATIGUE = "monitor_all_ads_fatigue"
    MONITOR_FATIGUE = "monitor_fatigue"  # alias of MONITOR_ALL_ADS_FATIGUE
    AUTO_INDEX_WINNERS = "auto_index_winners"
    AUTO_INDEX_WINNER = "auto_index_winner"
    EXECUTE_APPROVED_CHANGES = "execute_approved_changes"
    SWEEP_WEBHOOK_EVENTS = "sweep_webhook_events"
    SYNC_AD_METRICS = "sync_ad_metrics"  # hourly: ad-platform insights into ad_daily_metrics
    RENDER_VIDEO = "render_video_task"
    GENERATE_PREVIEW = "generate_preview_task"
    TRANSCODE = "transcode_task"
    TRANSCODE_SEGMENT = "transcode_segment_task"  # one part of a split-and-stitch transcode
    TRANSCODE_STITCH = "transcode_stitch_task"  # joins the parts and muxes the audio (takes the job's task id)
    TRANSCODE_SPLIT_FAILED = "transcode_split_failed_task"  # the chord's error callback
    CAPTION = "caption_task"
    CLEANUP = "cleanup_task"
    MONITOR_RESOURCES = "monitor_resources_task"
    VIDEO_PING = "video_ping"
    ML_PING = "ml_ping"


class QueueName(StrEnum):
    HUBSPOT_WEBHOOK_EVENTS = "hubspot-webhook-events"
    FATIGUE_MONITORING = "fatigue-monitoring"
    BUDGET_OPTIMIZATION = "budget-optimization"
    ML_DEFAULT = "ml-default"
    RENDER = "render_queue"
    TRANSCODE = "transcode_queue"
    CAPTION = "caption_queue"
    PREVIEW = "preview_queue"
    MAINTENANCE = "maintenance"


# Queue priorities of DESIGN.md §3 on the seed's scale: higher = more urgent.
QUEUE_PRIORITY: dict[QueueName, int] = {
    QueueName.RENDER: 10,
    QueueName.TRANSCODE: 7,
    QueueName.CAPTION: 6,
    QueueName.PREVIEW: 5,
    QueueName.MAINTENANCE: 5,
}
DEFAULT_PRIORITY = 5
MAX_PRIORITY = 10

# The order a worker consuming several queues drains them in (most urgent first). Maintenance comes
# first: its tasks take milliseconds and must not wait behind a one-hour render.
VIDEO_QUEUE_ORDER: tuple[QueueName, ...] = (
    QueueName.MAINTENANCE,
    QueueName.RENDER,
    QueueName.TRANSCODE,
    QueueName.CAPTION,
    QueueName.PREVIEW,
)
ML_QUEUE_ORDER: tuple[QueueName, ...] = (
    QueueName.HUBSPOT_WEBHOOK_EVENTS,
    QueueName.BUDGET_OPTIMIZATION,
    QueueName.FATIGUE_MONITORING,
    QueueName.ML_DEFAULT,
)

TASK_QUEUE: dict[TaskName, QueueName] = {
    TaskName.PROCESS_HUBSPOT_WEBHOOK: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.PROCESS_HUBSPOT_EVENTS: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.MONITOR_ALL_ADS_FATIGUE: QueueName.FATIGUE_MONITORING,
    TaskName.MONITOR_FATIGUE: QueueName.FATIGUE_MONITORING,
    TaskName.AUTO_INDEX_WINNERS: QueueName.BUDGET_OPTIMIZATION,
    TaskName.AUTO_INDEX_WINNER: QueueName.BUDGET_OPTIMIZATION,
    TaskName.EXECUTE_APPROVED_CHANGES: QueueName.BUDGET_OPTIMIZATION,
    TaskName.SWEEP_WEBHOOK_EVENTS: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.SYNC_AD_METRICS: QueueName.ML_DEFAULT,
    TaskName.RENDER_VIDEO: QueueName.RENDER,
    TaskName.GENERATE_PREVIEW: QueueName.PREVIEW,
    TaskName.TRANSCODE: QueueName.TRANSCODE,
    TaskName.TRANSCODE_SEGMENT: QueueName.TRANSCODE,
    TaskName.TRANSCODE_STITCH: QueueName.TRANSCODE,
    TaskName.TRANSCODE_SPLIT_FAILED: QueueName.TRANSCODE,
    TaskName.CAPTION: QueueName.CAPTION,
    TaskName.CLEANUP: QueueName.MAINTENANCE,
    TaskName.MONITOR_RESOURCES: QueueName.MAINTENANCE,
    TaskName.VIDEO_PING: QueueName.MAINTENANCE,
    TaskName.ML_PING: QueueName.ML_DEFAULT,
}

ML_TASKS: tuple[TaskName, ...] = (
    TaskName.PROCESS_HUBSPOT_WEBHOOK,
    TaskName.PROCESS_HUBSPOT_EVENTS,
    TaskName.MONITOR_ALL_ADS_FATIGUE,
    TaskName.MONITOR_FATIGUE,
    TaskName.AUTO_INDEX_WINNERS,
    TaskName.AUTO_INDEX_WINNER,
    TaskName.EXECUTE_APPROVED_CHANGES,
    TaskName.SWEEP_WEBHOOK_EVENTS,
    TaskName.SYNC_AD_METRICS,
    TaskName.ML_PING,
)
VIDEO_TASKS: tuple[TaskName, ...] = (
    TaskName.RENDER_VIDEO,
    TaskName.GENERATE_PREVIEW,
    TaskName.TRANSCODE,
    TaskName.TRANSCODE_SEGMENT,
    TaskName.TRANSCODE_STITCH,
    TaskName.TRANSCODE_SPLIT_FAILED,
    TaskName.CAPTION,
    TaskName.CLEANUP,
    TaskName.MONITOR_RESOURCES,
    TaskName.VIDEO_PING,
)


# ─── Progress protocol (DESIGN.md §4) ─────────────────────────────────────────────────────────────
class TaskStatus(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class ProgressEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    progress: float = Field(ge=0, le=100)
    status: TaskStatus
    message: str = ""
    timestamp: datetime
    # The publishing attempt's fencing token (leases/fencing.py); None for records written outside an attempt.
    lease_token: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


# ─── Helpers ────────────────────────────────────────────────────────────────────────────────────────
def refuse_nul(value: Any) -> Any:
    """No text field may hold NUL: PostgreSQL text cannot store it, and no path, stage or id contains one."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which no text field may hold")
    return value


class Payload(BaseModel):
    """Base of every task payload: unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*")(refuse_nul)


M = TypeVar("M", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_payload(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; raise InvalidPayload naming every bad field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid {model.__name__}: " + describe_errors(exc)) from None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def _quoted(key: str) -> str:
    return repr(key).replace(";", "\\x3b").replace(":", "\\x3a")


def describe_errors(exc: ValidationError, *, prefix: str = "", root: str = "payload") -> str:
    """``where: what; …`` for each problem.

    A key that is not a plain name is quoted, with ``;`` and ``:`` escaped so the message still reads as
    ``where: what`` pairs (``'': Extra inputs…``, ``'a\\x3b b': Extra inputs…``).
    """
    problems = []
    for item in exc.errors(include_url=False):
        parts = [str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(p) else _quoted(p) for p in item["loc"]]
        problems.append(f"{prefix + '.'.join(parts) if parts else root}: {item['msg']}")
    return "; ".join(problems)


PositiveSeconds = Annotated[float, Field(ge=0, le=36_000)]


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


# ─── ML: HubSpot webhooks ─────────────────────────────────────────────────────────────────────────
MAX_CLOCK_SKEW_S = 24 * 3600


def _epoch_millis(value: Any) -> Any:
    """HubSpot sends epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return value


def _aware(value: datetime) -> datetime:
    """A time without a zone (an ISO string or datetime without offset) is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _ip_address_or_none(value: str) -> str | None:
    if value == "":
        return None
    import ipaddress  # stdlib, cheap; kept local so the module's import list stays pydantic-only

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


# Shared by the webhook and click models: epoch milliseconds or ISO (naive = UTC); an IP address ("" = none).
EventTime = Annotated[datetime, BeforeValidator(_epoch_millis), AfterValidator(_aware)]
IpAddress = Annotated[str, Field(max_length=64), AfterValidator(_ip_address_or_none)]


class DealStageChange(Payload):
    """The internal single-object webhook payload of the seed (one deal-stage change).

    HubSpot events are normalised to this shape too (``portalId``, ``isCreation``, ``eventKey`` set by
    the ingestion endpoint). ``stageTo`` may only be missing on a deal creation, whose stage then comes
    from the CRM or the pipeline's entry stage.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    deal_id: str = Field(alias="dealId", min_length=1, max_length=128)
    stage_to: str | None = Field(None, alias="stageTo", min_length=1, max_length=128)
    stage_from: str | None = Field(None, alias="stageFrom", max_length=128)
    deal_value: float | None = Field(None, alias="dealValue", ge=0, le=1e12)
    tenant_id: str = Field("default", alias="tenantId", min_length=1, max_length=128)
    occurred_at: EventTime | None = Field(None, alias="occurredAt")
    click_id: str | None = Field(None, max_length=512)
    fbclid: str | None = Field(None, max_length=512)
    gclid: str | None = Field(None, max_length=512)
    fingerprint_hash: str | None = Field(None, max_length=128)
    ip_address: IpAddress | None = None
    user_agent: str | None = Field(None, max_length=1024)
    attributed_spend: float | None = Field(None, ge=0)
    event_key: str | None = Field(None, alias="eventKey", max_length=256)
    portal_id: int | None = Field(None, alias="portalId", ge=0)
    is_creation: bool = Field(False, alias="isCreation")

    @model_validator(mode="after")
    def _stage_known(self) -> DealStageChange:
        if self.stage_to is None and not self.is_creation:
            raise ValueError("stageTo is required (the deal stage the deal moved to, e.g. 'closedwon')")
        # A change dated far ahead would make every real later change look out of order.
        if self.occurred_at is not None and (self.occurred_at - utcnow()).total_seconds() > MAX_CLOCK_SKEW_S:
            raise ValueError(f"occurredAt {self.occurred_at.isoformat()} is more than a day in the future")
        return self


class HubSpotEvent(BaseModel):
    """One element of HubSpot's webhook array (v3 webhooks API; legacy ``eventType`` accepted too).

    Unknown fields are kept: HubSpot adds fields over time, and refusing them would make it retry.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event_id: int | str | None = Field(None, alias="eventId")
    subscription_id: int | None = Field(None, alias="subscriptionId")
    portal_id: int = Field(alias="portalId", ge=0)
    app_id: int | None = Field(None, alias="appId")
    occurred_at: int = Field(alias="occurredAt", ge=0, description="epoch milliseconds")
    subscription_type: str | None = Field(None, alias="subscriptionType", max_length=128)
    event_type: str | None = Field(None, alias="eventType", max_length=128)
    attempt_number: int | None = Field(None, alias="attemptNumber", ge=0)
    object_id: int | str = Field(alias="objectId")
    object_type_id: str | None = Field(None, alias="objectTypeId", max_length=32)
    property_name: str | None = Field(None, alias="propertyName", max_length=256)
    property_value: str | None = Field(None, alias="propertyValue", max_length=4096)
    change_source: str | None = Field(None, alias="changeSource", max_length=128)

    # Unknown (extra) fields keep any character: they are stored as received in a JSON column.
    _no_nul = field_validator("*")(refuse_nul)

    @model_validator(mode="after")
    def _has_kind(self) -> HubSpotEvent:
        if not (self.subscription_type or self.event_type):
            raise ValueError("subscriptionType (or legacy eventType) is required")
        return self

    @property
    def kind(self) -> str:
        return str(self.subscription_type or self.event_type)


class TrackClick(Payload):
    """A click on an ad's link, recorded for attribution (``POST /api/ml/attribution/track-click``)."""

    ad_id: str = Field(min_length=1, max_length=128)
    campaign_id: str | None = Field(None, max_length=128)
    tenant_id: str | None = Field(None, max_length=128)
    click_id: str | None = Field(None, max_length=512)
    fbclid: str | None = Field(None, max_length=512)
    gclid: str | None = Field(None, max_length=512)
    fingerprint: dict[str, str | int | float | bool | None] | None = Field(None, max_length=64)
    fingerprint_hash: str | None = Field(None, max_length=128)
    ip_address: IpAddress | None = None
    user_agent: str | None = Field(None, max_length=1024)
    utm_source: str | None = Field(None, max_length=256)
    utm_medium: str | None = Field(None, max_length=256)
    utm_campaign: str | None = Field(None, max_length=256)
    utm_content: str | None = Field(None, max_length=256)
    utm_term: str | None = Field(None, max_length=256)
    timestamp: EventTime | None = None

    @model_validator(mode="after")
    def _identifiable(self) -> TrackClick:
        if self.fingerprint is not None and self.fingerprint_hash is not None:
            raise ValueError("give fingerprint (components, hashed here) or fingerprint_hash, not both")
        has_id = any((self.click_id, self.fbclid, self.gclid, self.fingerprint, self.fingerprint_hash))
        if not has_id and not (self.ip_address and self.user_agent):
            raise ValueError("a click needs click_id, fbclid, gclid, a fingerprint, or ip_address with user_agent")
        return self


class SamplerFeedback(Payload):
    """External outcome feedback for one ad (``POST /api/ml/battle-hardened/feedback``)."""

    ad_id: str = Field(min_length=1, max_length=128)
    pipeline_value: float = Field(0.0, ge=-1e12, le=1e12)
    cash_revenue: float = Field(0.0, ge=-1e12, le=1e12)
    conversions: int = Field(0, ge=-1_000_000, le=1_000_000)
    feedback_id: str | None = Field(None, min_length=1, max_length=128, description="idempotency key")


class PipelineStage(Payload):
    """One deal stage: a probability of the deal amount, or a fixed value; ``won`` marks closed-won."""

    probability: float | None = Field(None, ge=0, le=1)
    value: float | None = Field(None, ge=0, le=1e12)
    won: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> PipelineStage:
        if (self.probability is None) == (self.value is None):
            raise ValueError("give exactly one of probability (0-1) or value (fixed amount)")
        return self


class PipelineConfig(Payload):
    """A tenant's deal pipeline: stage id → rule, plus the amount used when a deal has none."""

    stages: dict[str, PipelineStage] = Field(min_length=1, max_length=200)
    average_deal_value: float = Field(ge=0, le=1e12)
    entry_stage: str | None = Field(None, max_length=128)
    portal_id: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _entry_known(self) -> PipelineConfig:
        if self.entry_stage is not None and self.entry_stage not in self.stages:
            raise ValueError(f"entry_stage {self.entry_stage!r} is not one of the stages {sorted(self.stages)}")
        return self


class WebhookResult(BaseModel):
    status: str  # processed, stale (older than the deal's last change), duplicate
    synthetic_revenue: float
    attribution: dict[str, Any] | None
    ad_id: str | None
    deal_id: str | None = None
    credit: float = 0.0
    event_key: str | None = None
    tenant_id: str | None = None
    stage_from: str | None = None
    stage_to: str | None = None
    amount: float | None = None
    amount_source: str | None = None
    note: str | None = None


# ─── ML: winners ──────────────────────────────────────────────────────────────────────────────────
class IndexWinnerJob(Payload):
    ad_id: str = Field(min_length=1, max_length=128)
    creative_dna: dict[str, Any]
    force: bool = False


class IndexWinnerResult(BaseModel):
    """What ``auto_index_winner`` did with one ad, and why when it was not indexed."""

    ad_id: str
    indexed: bool
    action: Literal["added", "updated", "unchanged", "removed", "skipped"]
    is_winner: bool
    forced: bool
    reasons: list[str]
    vector_id: int | None = None
    total: int
    timestamp: datetime


class IndexWinnersResult(BaseModel):
    added: int
    updated: int
    removed: int
    unchanged: int
    total: int
    winners: int = 0
    forced: int = 0
    winners_without_dna: int = 0
    embedded: int = 0
    duration_s: float = 0.0
    timestamp: datetime


# ─── ML: fatigue ──────────────────────────────────────────────────────────────────────────────────
class FatigueScanJob(Payload):
    tenant_id: str | None = Field(None, min_length=1, max_length=128)
    chunk_size: int = Field(5000, ge=1, le=100_000)
    as_of: date | None = None  # last day to judge; default the latest day with metrics
    lookback_days: int = Field(30, ge=7, le=120)
    create_proposals: bool = True


class FatigueScanResult(BaseModel):
    ads_scanned: int
    by_status: dict[str, int]
    critical: int
    proposals_created: int
    timestamp: datetime
    scan_id: int | None = None
    as_of: date | None = None
    warnings: int = 0
    duration_s: float = 0.0
