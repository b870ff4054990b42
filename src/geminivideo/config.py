"""Settings: every environment variable of DESIGN.md §2, typed and validated in one place.

Nothing is read at import time. ``get_settings()`` builds the object on first use and caches it per
process; tests and scripts that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from geminivideo.errors import ConfigError

DEFAULT_FLOWER_PASSWORD = "changeme"
_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_BROKER_SCHEMES = (*_REDIS_SCHEMES, "amqp://", "amqps://", "pyamqp://")
_FORBIDDEN_ROOTS = (Path("/"), Path.home())


def _split_colon_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(":")) if part]
    return value


def _split_comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return value


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
    winner_index_path: Path = Path("var/winner_index")
    # CPU threads torch and FAISS use in each ML process: an ML worker runs several pool processes, and on a
    # busy host more threads than free cores made embedding and search 3-10x slower (bench/winners.py).
    ml_num_threads: int = Field(1, ge=1, le=256)
    # FAISS answers one query at a time: OpenMP threads only add overhead there (flat p99 at 100k vectors:
    # 8.6 ms on 1 thread, 20.8 ms on 2, bench/winners.py), so FAISS gets its own, smaller default.
    faiss_num_threads: int = Field(1, ge=1, le=256)

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8003, gt=0, lt=65536)

    beat_timezone: str = "UTC"
    resource_warn_percent: float = Field(90.0, gt=0, le=100)
    unacked_restore_interval_s: float = Field(10.0, gt=0)
    # Redis broker: a queue's visibility timeout is its longest hard limit plus this (see celery_base).
    visibility_margin_s: float = Field(60.0, ge=0)
    in_use_lease_s: float = Field(120.0, ge=3)  # a killed task's files stay protected from cleanup this long

    # Housekeeping (video/cleanup.py, video/resources.py). Per-resource thresholds default to
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

    # Telemetry (geminivideo.telemetry; README "Prometheus, logs and traces"): log lines, metrics, OTLP traces.
    log_format: Literal["json", "text"] = "text"
    metrics_token: SecretStr | None = None  # bearer token for /metrics; unset: loopback requests only
    metrics_token_file: Path | None = None
    worker_metrics_port: int | None = Field(None, gt=0, lt=65536)  # one /metrics per worker host when set
    worker_metrics_address: str = "127.0.0.1"
    prometheus_multiproc_dir: Path | None = None  # where a host's processes share their counters
    otel_exporter_otlp_endpoint: str | None = None  # traces are set up only when this is set

    @field_validator("media_roots", mode="before")
    @classmethod
    def _parse_media_roots(cls, value: Any) -> Any:
        return _split_colon_list(value)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
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
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {field.upper()}: {item['msg']}{shown}")
    return "invalid configuration:\n" + "\n".join(lines)


@functools.cache
def get_settings() -> Settings:
    """Build the settings from the environment once per process; raise ConfigError naming bad variables."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
