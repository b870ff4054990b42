"""Credentials stay out of messages: URL passwords masked in config errors and log records; every secret
setting has a ``*_FILE`` form; the accepted HubSpot signature versions are a setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from geminivideo.config import Settings, get_settings, secret_setting_names
from geminivideo.errors import ConfigError
from geminivideo.ml.webhooks.signature import SignatureRejected, v1_signature, v3_signature, verify
from geminivideo.security.masking import MaskingFilter, mask


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(("text", "expected"), [
    ("postgres://u:s3cret@h:5432/db", "postgres://u:***@h:5432/db"),
    ("redis://:hunter2@redis:6379/0 refused", "redis://:***@redis:6379/0 refused"),
    ("amqp://guest:guest@mq// and redis://:x@r/1", "amqp://guest:***@mq// and redis://:***@r/1"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("see https://example.com:8443/path", "see https://example.com:8443/path"),
])
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_a_config_error_never_shows_the_password(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "mysql://app:TopSecret42@db/prod")
    clean_env.setenv("REDIS_URL", "http://:TopSecret42@redis:6379/0")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert "TopSecret42" not in str(caught.value)
    assert "DATABASE_URL" in str(caught.value) and "REDIS_URL" in str(caught.value)
    assert ":***@redis" in str(caught.value)


def test_log_records_are_masked() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "broker %s refused", ("redis://:pw123@h/0",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "broker redis://:***@h/0 refused"


def test_every_secret_setting_has_a_file_form(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = secret_setting_names(Settings)
    assert {"hubspot_client_secret", "flower_password", "database_url", "redis_url", "api_keys"} <= set(names)
    secret = tmp_path / "hubspot"
    secret.write_text("from-a-file\n")
    keys = tmp_path / "keys"
    keys.write_text("ops=tok-1,tok-2\n")
    clean_env.setenv("HUBSPOT_CLIENT_SECRET_FILE", str(secret))
    clean_env.setenv("API_KEYS_FILE", str(keys))
    settings = get_settings()
    assert settings.hubspot_client_secret is not None
    assert settings.hubspot_client_secret.get_secret_value() == "from-a-file"
    assert settings.api_keys == ["ops=tok-1", "tok-2"]
    clean_env.setenv("HUBSPOT_CLIENT_SECRET", "also-here")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="both HUBSPOT_CLIENT_SECRET and HUBSPOT_CLIENT_SECRET_FILE"):
        get_settings()
    clean_env.delenv("HUBSPOT_CLIENT_SECRET")
    clean_env.setenv("DATABASE_URL_FILE", str(tmp_path / "missing"))
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"DATABASE_URL_FILE=.*cannot read it"):
        get_settings()


def test_signature_versions_setting_refuses_legacy_signatures(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUBSPOT_SIGNATURE_VERSIONS", "V3")
    assert get_settings().hubspot_signature_versions == ["v3"]
    body, uri = b'{"a":1}', "https://hooks.example.com/api/webhooks/hubspot"
    legacy = {"X-HubSpot-Signature": v1_signature("s", body), "X-HubSpot-Signature-Version": "v1"}
    assert verify("s", method="POST", uri=uri, body=body, headers=legacy) == "v1"
    with pytest.raises(SignatureRejected, match="v1 is not accepted"):
        verify("s", method="POST", uri=uri, body=body, headers=legacy, versions=("v3",))
    stamp = "1700000000000"
    v3 = {"X-HubSpot-Signature-v3": v3_signature("s", "POST", uri, body, stamp), "X-HubSpot-Request-Timestamp": stamp}
    assert verify("s", method="POST", uri=uri, body=body, headers=v3, versions=("v3",), now_ms=1700000001000) == "v3"
