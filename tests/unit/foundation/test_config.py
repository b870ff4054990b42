"""Settings: defaults from DESIGN.md §2, and bad values stop start-up naming the variable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from geminivideo.config import Settings, get_settings
from geminivideo.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_defaults_match_the_design(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.broker_url == settings.result_backend == settings.redis_url
    assert settings.database_url == "sqlite:///var/geminivideo.db"
    assert settings.ml_service_url == "http://localhost:8003"
    assert (settings.temp_dir, settings.render_dir, settings.preview_dir) == (
        Path("/tmp/video-processing"), Path("/tmp/renders"), Path("/tmp/previews"))
    assert settings.media_roots == [settings.temp_dir, settings.render_dir, settings.preview_dir]
    timeouts = (settings.render_timeout, settings.preview_timeout, settings.transcode_timeout, settings.caption_timeout)
    assert timeouts == (3600, 300, 1800, 900)
    assert (settings.cleanup_age_days, settings.max_temp_size_gb) == (7, 50)
    assert settings.flower_user == "admin"
    assert settings.hubspot_client_secret is None and settings.hubspot_verify_signatures
    assert settings.winner_index_path == Path("var/winner_index")


def test_environment_overrides_and_lists(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MEDIA_ROOTS", "/srv/media:/mnt/shared")
    clean_env.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    clean_env.setenv("API_KEYS", "k1, k2")
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = get_settings()
    assert settings.media_roots == [Path("/srv/media"), Path("/mnt/shared")]
    assert settings.broker_url.startswith("amqp://") and not settings.broker_is_redis
    assert settings.api_keys == ["k1", "k2"]
    assert settings.database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RENDER_TIMEOUT", "abc", "valid integer"),
        ("RENDER_TIMEOUT", "0", "greater than 0"),
        ("DATABASE_URL", "mysql://root@localhost/x", "expected sqlite"),
        ("MEDIA_ROOTS", "relative/dir", "absolute path"),
        ("MEDIA_ROOTS", "/", "too broad"),
        ("RENDER_DIR", "/", "too broad"),
        ("REDIS_URL", "http://localhost", "expected redis://"),
        ("CELERY_BROKER_URL", "sqs://x", "expected redis://"),
    ],
)
def test_bad_values_name_the_variable(clean_env: pytest.MonkeyPatch, variable: str, value: str, expected: str) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    message = str(caught.value)
    assert variable in message
    assert expected in message


def test_settings_are_built_lazily_and_cached(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RENDER_TIMEOUT", "120")
    first = get_settings()
    clean_env.setenv("RENDER_TIMEOUT", "240")
    assert get_settings() is first and first.render_timeout == 120
    get_settings.cache_clear()
    assert get_settings().render_timeout == 240
