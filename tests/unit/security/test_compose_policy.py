"""The compose files keep least privilege: secrets only where used and never as plain variables, every
long-running service hardened and limited, nothing published beyond loopback by default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
FILES = ("docker-compose.yml", "docker-compose.workers.yml")
# Which service may mount which secret (anything not listed is refused).
STORE = {"aws_access_key_id", "aws_secret_access_key"}  # only where media moves: API, ML and video workers
ALLOWED_SECRETS = {
    "redis": {"redis_url_api", "redis_url_ml", "redis_url_video", "redis_url_beat", "redis_url_flower"},
    "postgres": {"postgres_password", "database_url_app"},
    "migrate": {"database_url_owner"},
    "api": {"redis_url_api", "database_url_app", "hubspot_client_secret", "api_keys", *STORE, "metrics_token"},
    "celery-ml": {"redis_url_ml", "database_url_app", *STORE, "metrics_token"},
    "celery-ml-beat": {"redis_url_beat"},
    "celery-video-beat": {"redis_url_beat"},
    "flower": {"redis_url_flower", "flower_password"},
    "minio": STORE,  # the store's root user is the workers' S3 key (self-hosting profile "storage")
    "minio-init": STORE,
    "prometheus": {"metrics_token"},
    "grafana": {"grafana_admin_password"},
}
VIDEO_SECRETS = {"redis_url_video", "database_url_app", *STORE, "metrics_token"}
SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEYS|DATABASE_URL|REDIS_URL|BROKER_URL|RESULT_BACKEND)$")
ONE_SHOT = {"migrate", "minio-init"}


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for name in FILES:
        services.update(yaml.safe_load((ROOT / name).read_text())["services"])
    return services


SERVICES = _services()


def test_secrets_are_mounted_only_where_they_are_used() -> None:
    for name, service in SERVICES.items():
        allowed = VIDEO_SECRETS if name.startswith("celery-video") and "beat" not in name else ALLOWED_SECRETS[name]
        mounted = set(service.get("secrets", []))
        assert mounted <= allowed, f"{name} mounts {sorted(mounted - allowed)}"
    assert "hubspot_client_secret" in SERVICES["api"]["secrets"]
    for name, service in SERVICES.items():
        if name != "api":
            assert "hubspot_client_secret" not in service.get("secrets", []), name
        if name != "migrate":
            assert "database_url_owner" not in service.get("secrets", []), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_secret_is_a_plain_environment_variable(name: str) -> None:
    environment = SERVICES[name].get("environment") or {}
    for variable, value in environment.items():
        if SECRET_NAMES.search(variable):
            assert variable.endswith("_FILE") or str(value).startswith("/run/secrets/"), (
                f"{name}: {variable} carries a secret in the environment; use {variable}_FILE and a Docker secret")
        if variable.endswith("_FILE"):
            assert str(value).startswith("/run/secrets/"), f"{name}: {variable}={value}"
            secret = str(value).removeprefix("/run/secrets/")
            assert secret in SERVICES[name].get("secrets", []), f"{name}: {variable} names an unmounted secret"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_hardened_and_limited(name: str) -> None:
    service = SERVICES[name]
    assert service.get("cap_drop") == ["ALL"], f"{name}: cap_drop [ALL]"
    assert "no-new-privileges:true" in service.get("security_opt", []), f"{name}: no-new-privileges"
    if name not in ONE_SHOT:
        assert service.get("mem_limit"), f"{name}: mem_limit"
        assert service.get("pids_limit"), f"{name}: pids_limit"
    if name != "postgres":  # initdb writes outside its volume
        assert service.get("read_only") is True, f"{name}: read_only root file system"
    assert set(service.get("cap_add", [])) <= {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"}, name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_are_published_on_loopback_by_default(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        host = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(port)).rsplit(":", 2)[0]
        assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback by default"
    assert "ports" not in SERVICES.get("redis", {}) and "ports" not in SERVICES.get("postgres", {})


def test_every_declared_secret_is_a_file_and_init_secrets_creates_it() -> None:
    declared = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["secrets"]
    script = (ROOT / "scripts/init-secrets.sh").read_text()
    for secret, spec in declared.items():
        assert spec["file"].endswith(f"/{secret}")
        assert secret in script or secret.startswith("redis_url_"), f"init-secrets.sh does not create {secret}"
    assert "redis_url_$role" in script
