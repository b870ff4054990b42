"""Settings: every environment variable of DESIGN.md §2, typed and validated in one place.

Nothing is read at import time. ``get_settings()`` builds the object on first use and caches it per
process; tests and scripts that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from geminivideo.errors import ConfigError
from geminivideo.security.masking import mask, mask_value

DEFAULT_FLOWER_PASSWORD = "changeme"
_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_BROKER_SCHEMES = (*_REDIS_SCHEMES, "amqp://", "amqps://", "pyamqp://")
_FORBIDDEN_ROOTS = (Path("/"), Path.home())
_S3_PREFIX = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\x00]*)?$"


SignatureVersion = Literal["v1", "v2", "v3"]


def _all_signature_versions() -> list[SignatureVersion]:
    return ["v1", "v2", "v3"]


def _split_colon_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(":")) if part]
    return value


def _split_comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return value


# Settings that hold a credential without being SecretStr: URLs may carry a password, keys are keys.
_CREDENTIAL_SETTINGS = ("redis_url", "celery_broker_url", "celery_result_backend", "database_url", "api_keys")


def secret_setting_names(settings_cls: type[BaseSettings]) -> list[str]:
    """Every setting that can hold a secret: the SecretStr ones and the URLs and keys above."""
    return [name for name, info in settings_cls.model_fields.items()
            if name in _CREDENTIAL_SETTINGS or "SecretStr" in str(info.annotation)]


class _SecretFiles(PydanticBaseSettingsSource):
    """``NAME_FILE=/run/secrets/name`` for every secret setting (Docker and Kubernetes secrets): the file's
    content, trailing newline stripped. Setting both ``NAME`` and ``NAME_FILE`` is an error, not a guess."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in secret_setting_names(self.settings_cls):
            path = environ.get(f"{name.upper()}_FILE")
            if not path:
                continue
            if environ.get(name.upper()):
                raise ConfigError(f"both {name.upper()} and {name.upper()}_FILE are set: keep one")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{name.upper()}_FILE={path}: cannot read it ({exc.strerror})") from None
        return values


class Settings(BaseSettings):
    """Typed view of the process environment (see README, "Configuration")."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: str = "redis://localhost:6379/0"
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    database_url: str = "sqlite:///var/geminivideo.db"
    ml_service_url: str = "http://localhost:8003"

    temp_dir: Path = Path("/tmp/video-processing")
    render_dir: Path = Path("/tmp/renders")
    preview_dir: Path = Path("/tmp/previews")
    media_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    render_timeout: int = Field(3600, gt=0)
    preview_timeout: int = Field(300, gt=0)
    transcode_timeout: int = Field(1800, gt=0)
    caption_timeout: int = Field(900, gt=0)

    cleanup_age_days: float = Field(7, ge=0)
    max_temp_size_gb: float = Field(50, gt=0)

    flower_user: str = "admin"
    flower_password: SecretStr = SecretStr(DEFAULT_FLOWER_PASSWORD)
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(5555, gt=0, lt=65536)

    hubspot_client_secret: SecretStr | None = None
    hubspot_verify_signatures: bool = True
    hubspot_access_token: SecretStr | None = None
    hubspot_api_base_url: str = "https://api.hubapi.com"

    whisper_model_dir: Path | None = None
    whisper_cache_dir: Path = Path("var/whisper-models")
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_allow_download: bool = True
    # Batched Whisper (faster-whisper's BatchedInferencePipeline) for audio of at least CAPTION_BATCH_MIN_S: on
    # 2 CPU cores it took 0.70-0.89x the wall time of sequential decoding with the same WER (bench/captions.py);
    # shorter audio stays sequential (one VAD chunk or two: nothing to batch).
    caption_batching: bool = True
    caption_batch_min_s: float = Field(60.0, ge=0)
    caption_batch_size: int = Field(16, ge=1, le=256)
    winner_index_path: Path = Path("var/winner_index")
    # CPU threads torch and FAISS use in each ML process: an ML worker runs several pool processes, and on a
    # busy host more threads than free cores made embedding and search 3-10x slower (bench/winners.py).
    ml_num_threads: int = Field(1, ge=1, le=256)
    # FAISS answers one query at a time: OpenMP threads only add overhead there (flat p99 at 100k vectors:
    # 8.6 ms on 1 thread, 20.8 ms on 2, bench/winners.py), so FAISS gets its own, smaller default.
    faiss_num_threads: int = Field(1, ge=1, le=256)

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Authentication is on unless explicitly "off" (then only loopback clients are served, as admin).
    api_auth: Literal["on", "off"] = "on"
    # Abuse limits (api/limits.py): token buckets per key in Redis, open event streams per API process.
    rate_limit_jobs_per_minute: float = Field(60.0, gt=0)
    rate_limit_jobs_burst: int = Field(20, ge=1)
    rate_limit_ml_per_minute: float = Field(120.0, gt=0)
    rate_limit_ml_burst: int = Field(30, ge=1)
    sse_max_streams_per_key: int = Field(10, ge=1)
    sse_max_streams: int = Field(200, ge=1)
    # Behind a proxy: HubSpot signs the public URL, not the one uvicorn sees. PUBLIC_BASE_URL names it;
    # else uvicorn rebuilds it from X-Forwarded-* sent by FORWARDED_ALLOW_IPS (uvicorn reads that variable).
    public_base_url: str | None = Field(None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    forwarded_allow_ips: str = "127.0.0.1"
    hubspot_signature_versions: Annotated[list[SignatureVersion], NoDecode] = Field(
        default_factory=_all_signature_versions, min_length=1)
    max_request_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Resource limits of every FFmpeg/ffprobe child (security/rlimits.py); 0 turns one off.
    ffmpeg_max_memory_mb: int = Field(8192, ge=0)
    ffmpeg_max_cpu_s: int = Field(6 * 3600, ge=0)
    ffmpeg_max_file_size_mb: int = Field(50 * 1024, ge=0)
    ffmpeg_max_open_files: int = Field(1024, ge=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8003, gt=0, lt=65536)

    beat_timezone: str = "UTC"
    resource_warn_percent: float = Field(90.0, gt=0, le=100)
    unacked_restore_interval_s: float = Field(10.0, gt=0)
    # RabbitMQ broker: a consumer's acknowledgement timeout is its queue's longest hard limit, the longest retry
    # countdown and this (leases/rabbitmq.py). On Redis, visibility is the lease (LEASE_TIMEOUT_S).
    visibility_margin_s: float = Field(60.0, ge=0)
    in_use_lease_s: float = Field(120.0, ge=3)  # a killed task's files stay protected from cleanup this long
    # Task leases (geminivideo/leases): on Redis a delivery stays invisible LEASE_TIMEOUT_S after its worker's last
    # renewal; the worker renews everything it holds every LEASE_RENEW_S (default a quarter of the timeout). An
    # attempt that cannot confirm its lease for LEASE_TIMEOUT_S stops and publishes nothing.
    lease_timeout_s: float = Field(60.0, ge=2)
    lease_renew_s: float | None = Field(None, gt=0)

    # Housekeeping (video/housekeeping/cleanup.py, video/housekeeping/resources.py). Per-resource thresholds default to
    # RESOURCE_WARN_PERCENT; the host name defaults to the machine's (set it to the node name in containers).
    resource_warn_cpu_percent: float | None = Field(None, gt=0, le=100)
    resource_warn_memory_percent: float | None = Field(None, gt=0, le=100)
    resource_warn_disk_percent: float | None = Field(None, gt=0, le=100)
    resource_warn_gpu_memory_percent: float | None = Field(None, gt=0, le=100)
    resource_hostname: str | None = Field(None, pattern=r"^[A-Za-z0-9._@-]{1,253}$")
    monitor_interval_s: float = Field(60.0, ge=1)
    resource_monitor_on_workers: bool = True
    cleanup_interval_s: float | None = Field(None, ge=1)  # replaces the daily 02:00 run when set
    cleanup_partial_age_s: float = Field(3600.0, ge=0)  # FFmpeg temp outputs untouched this long are orphans
    beat_probe_interval_s: float | None = Field(None, ge=1)  # each beat also sends its app's ping task

    # Object storage (storage/): media in and out as s3:// URIs, SigV4 always. No endpoint = AWS S3.
    s3_endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{2,32}$")
    storage_buckets: Annotated[list[str], NoDecode] = Field(default_factory=list)  # allow-list, like MEDIA_ROOTS
    output_url: str | None = Field(None, pattern=_S3_PREFIX)  # outputs go here (s3://bucket/prefix/) when set
    index_url: str | None = Field(None, pattern=_S3_PREFIX)  # winner index objects + pointer when set
    max_input_bytes: int = Field(20 * 1024**3, gt=0)  # an s3:// input larger than this is refused from its HEAD
    presign_expiry_s: int = Field(3600, ge=1, le=7 * 24 * 3600)  # SigV4 presigned URLs live at most 7 days

    # Meta Marketing API (ml/platforms/meta.py): hourly insights sync and execution of approved changes.
    meta_ad_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)  # "act_1:tenant,act_2"
    meta_access_token: SecretStr | None = None
    meta_api_version: str = Field("v26.0", pattern=r"^v\d+\.\d+$")
    meta_execute: bool = False  # false: approved changes are recorded only, nothing is sent to Meta
    meta_graph_url: str = Field("https://graph.facebook.com", pattern=r"^https?://[^/]+$")
    meta_sync_days: int = Field(7, ge=1, le=90)  # each sync re-reads this many days, so corrections arrive
    meta_async_after_days: int = Field(14, ge=1)  # longer ranges use the asynchronous report job
    meta_poll_interval_s: float = Field(5.0, gt=0)
    meta_throttle_wait_s: float = Field(60.0, ge=0)  # wait on a rate-limit answer that names no time
    meta_timeout_s: float = Field(60.0, gt=0)
    # Telemetry (geminivideo.telemetry; README "Prometheus, logs and traces"): log lines, metrics, OTLP traces.
    log_format: Literal["json", "text"] = "text"
    metrics_token: SecretStr | None = None  # bearer token for /metrics; unset: loopback requests only
    worker_metrics_port: int | None = Field(None, gt=0, lt=65536)  # one /metrics per worker host when set
    worker_metrics_address: str = "127.0.0.1"
    prometheus_multiproc_dir: Path | None = None  # where a host's processes share their counters
    otel_exporter_otlp_endpoint: str | None = None  # traces are set up only when this is set
    # Split-and-stitch transcoding (video/split_transcode.py): inputs longer than SPLIT_MIN_S are cut at
    # keyframes into parts of about SPLIT_SEGMENT_S (at most SPLIT_MAX_SEGMENTS), each encoded by its own task.
    split_min_s: float = Field(300.0, gt=0)
    split_segment_s: float = Field(60.0, gt=0)
    split_max_segments: int = Field(64, ge=2, le=1000)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("media_roots", mode="before")
    @classmethod
    def _parse_media_roots(cls, value: Any) -> Any:
        return _split_colon_list(value)

    @field_validator("hubspot_signature_versions", mode="before")
    @classmethod
    def _parse_signature_versions(cls, value: Any) -> Any:
        return _split_comma_list(value.lower()) if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        return _split_comma_list(value)

    @field_validator("s3_endpoint_url", "output_url", "index_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # compose passes ${VAR:-} through as an empty string

    @field_validator("storage_buckets", mode="before")
    @classmethod
    def _parse_storage_buckets(cls, value: Any) -> Any:
        return _split_comma_list(value)

    @model_validator(mode="after")
    def _storage_urls_allowed(self) -> Settings:
        for name in ("output_url", "index_url"):
            url = getattr(self, name)
            bucket = url[5:].split("/", 1)[0] if url else None
            if bucket is not None and bucket not in self.storage_buckets:
                raise ValueError(f"{name.upper()}: bucket {bucket!r} is not in STORAGE_BUCKETS "
                                 f"({', '.join(self.storage_buckets) or 'empty'}); add it there")
        return self

    @field_validator("meta_ad_accounts", mode="before")
    @classmethod
    def _parse_meta_accounts(cls, value: Any) -> Any:
        return _split_comma_list(value)

    @field_validator("beat_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        import zoneinfo  # stdlib; local because only this check needs it

        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'") from None
        return name

    @field_validator("media_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        for root in roots:
            if not root.is_absolute():
                raise ValueError(f"every entry must be an absolute path, got {str(root)!r}")
            if root.resolve() in _FORBIDDEN_ROOTS:
                raise ValueError(f"{str(root)!r} is too broad to be a media root (use a dedicated folder)")
        return roots

    @field_validator("temp_dir", "render_dir", "preview_dir")
    @classmethod
    def _absolute_work_dir(cls, path: Path) -> Path:
        if not path.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(path)!r}")
        if path.resolve() in _FORBIDDEN_ROOTS:
            raise ValueError(f"{str(path)!r} is too broad: cleanup deletes old files inside it")
        return path

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in _DB_SCHEMES:
            raise ValueError(f"expected sqlite:///path or postgresql+psycopg://user@host/db, got scheme {scheme!r}")
        if scheme == "postgresql":
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if not url.startswith(_REDIS_SCHEMES):
            raise ValueError(f"expected redis://host:port/db, got {url!r}")
        return url

    @field_validator("celery_broker_url", "celery_result_backend")
    @classmethod
    def _broker_scheme(cls, url: str | None) -> str | None:
        if url is not None and url and not url.startswith(_BROKER_SCHEMES):
            raise ValueError(f"expected redis://… or amqp://…, got {url!r}")
        return url or None

    @model_validator(mode="after")
    def _default_media_roots(self) -> Settings:
        if not self.media_roots:
            object.__setattr__(self, "media_roots", [self.temp_dir, self.render_dir, self.preview_dir])
        return self

    @model_validator(mode="after")
    def _renew_within_lease(self) -> Settings:
        if self.lease_renew_s is not None and self.lease_renew_s >= self.lease_timeout_s:
            raise ValueError(f"LEASE_RENEW_S ({self.lease_renew_s:g}) must be shorter than LEASE_TIMEOUT_S "
                             f"({self.lease_timeout_s:g}), e.g. a quarter of it")
        return self

    @property
    def lease_renew_interval_s(self) -> float:
        """LEASE_RENEW_S, or a quarter of LEASE_TIMEOUT_S: three renewals may fail before the lease is lost."""
        return self.lease_renew_s if self.lease_renew_s is not None else self.lease_timeout_s / 4

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(_REDIS_SCHEMES)

    @property
    def work_dirs(self) -> tuple[Path, Path, Path]:
        return (self.temp_dir, self.render_dir, self.preview_dir)

    def ensure_work_dirs(self) -> None:
        for path in self.work_dirs:
            path.mkdir(parents=True, exist_ok=True)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        given = item.get("input")
        shown = "" if isinstance(given, dict) else f" (got {mask_value(given)!r})"
        lines.append(f"  {field.upper()}: {mask(item['msg'])}{shown}")
    return "invalid configuration:\n" + "\n".join(lines)


@functools.cache
def get_settings() -> Settings:
    """Build the settings from the environment once per process; raise ConfigError naming bad variables."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
