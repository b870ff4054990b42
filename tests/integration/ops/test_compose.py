"""The compose files, checked by Debian's docker-compose (no engine needed) and against the code they run.

Given both compose files merged by ``docker-compose config``, then every service's command names a real
Celery app, real queues in the contract's order and real options, every long-running service has a
healthcheck that means something and restarts, workers scale (no fixed names or ports) and never run as root.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from celery.bin.beat import beat as beat_command
from celery.bin.celery import celery as celery_command
from celery.bin.worker import worker as worker_command

from geminivideo.contracts import ML_QUEUE_ORDER, VIDEO_QUEUE_ORDER
from geminivideo.ops import APPS, FAMILIES

ROOT = Path(__file__).resolve().parents[3]
FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.workers.yml")]
# Secrets are Docker secrets (files from scripts/init-secrets.sh), not variables: none is needed to render.
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "HUBSPOT_CLIENT_SECRET": "hs-secret", "FLOWER_PASSWORD": "fl-secret"}
WORKER_SERVICES = {"celery-ml": "ml", "celery-video-render": "render", "celery-video-preview": "preview",
                   "celery-video-transcode": "transcode", "celery-video-caption": "caption"}


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is required: apt-get install docker-compose"
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([binary, *FILES, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose("--profile", "gpu", "config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def options_of(command: Any) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def parse_celery(argv: list[str]) -> tuple[str, str, dict[str, str], list[str]]:
    """(app, subcommand, option -> value, bare flags) of a `celery -A app <sub> ...` command."""
    assert argv[:2] == ["celery", "-A"], argv
    app, sub, rest = argv[2], argv[3], argv[4:]
    values: dict[str, str] = {}
    flags: list[str] = []
    i = 0
    while i < len(rest):
        if i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            values[rest[i]] = rest[i + 1]
            i += 2
        else:
            flags.append(rest[i])
            i += 1
    return app, sub, values, flags


def load_app(spec: str) -> Celery:
    module, attr = spec.split(":")
    app = getattr(importlib.import_module(module), attr)
    assert isinstance(app, Celery)
    return app


def test_secret_values_never_reach_the_rendered_configuration() -> None:
    result = compose("config", env=SECRETS)  # even when an operator still exports the old variables
    assert result.returncode == 0, result.stderr
    for value in SECRETS.values():
        assert value not in result.stdout


def test_worker_commands_name_real_apps_queues_and_options(config: dict[str, Any]) -> None:
    services = config["services"]
    worker_options = options_of(worker_command) | options_of(celery_command)
    for service, family_name in WORKER_SERVICES.items():
        family = next(f for f in FAMILIES if f.name == family_name)
        app_spec, sub, values, flags = parse_celery(services[service]["command"])
        assert sub == "worker" and app_spec == APPS[family.app]
        app = load_app(app_spec)
        declared = [q.name for q in app.conf.task_queues]
        queues = values["-Q"].split(",")
        assert set(queues) <= set(declared), (service, queues)
        order = [str(q) for q in (VIDEO_QUEUE_ORDER if family.app == "video" else ML_QUEUE_ORDER)]
        assert queues == [q for q in order if q in queues], f"{service}: queues not in contract order"
        assert queues == [str(q) for q in family.queues]
        assert int(values["-c"]) == family.concurrency
        assert int(values["--max-tasks-per-child"]) == family.max_tasks_per_child
        assert values["-n"] == family.hostname
        assert "-E" in flags, f"{service}: task events are needed by Flower"
        for option in [*values, *flags]:
            assert option in worker_options, f"{service}: {option} is not a celery worker option"
        health = " ".join(services[service]["healthcheck"]["test"])
        assert f"-A {app_spec} inspect ping -d {family.hostname.replace('%h', '$$HOSTNAME')}" in health


def test_gpu_profile_reserves_an_nvidia_device(config: dict[str, Any]) -> None:
    for service in ["celery-video-render-gpu", "celery-video-caption-gpu"]:
        spec = config["services"][service]
        assert spec["profiles"] == ["gpu"]
        devices = spec["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        app_spec, sub, values, _ = parse_celery(spec["command"])
        assert sub == "worker" and set(values["-Q"].split(",")) <= {q.name for q in load_app(app_spec).conf.task_queues}


def test_beats_flower_and_api_run_real_commands(config: dict[str, Any]) -> None:
    services = config["services"]
    for service, app_name in [("celery-ml-beat", "ml"), ("celery-video-beat", "video")]:
        app_spec, sub, values, flags = parse_celery(services[service]["command"])
        assert sub == "beat" and app_spec == APPS[app_name]
        assert load_app(app_spec).conf.beat_scheduler == "geminivideo.beat:ResilientRedBeatScheduler"
        assert set([*values, *flags]) <= options_of(beat_command) | options_of(celery_command)
        expected = ["CMD", "python", "-m", "geminivideo.ops", "beat-health", "--app", app_name]
        assert services[service]["healthcheck"]["test"] == expected

    flower = services["flower"]
    assert flower["command"][:3] == ["python", "-m", "geminivideo.flower"]
    assert flower["environment"]["FLOWER_PASSWORD_FILE"] == "/run/secrets/flower_password"
    assert flower["healthcheck"]["test"][-2:] == ["geminivideo.flower", "check"]
    importlib.import_module("geminivideo.flower")

    api = services["api"]
    assert api["command"][:2] == ["uvicorn", "geminivideo.api:app"]
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["geminivideo", "db", "upgrade"]


def test_services_restart_scale_and_wait_for_healthy_dependencies(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, spec in services.items():
        assert "container_name" not in spec, name
        if name in ("migrate", "minio-init"):  # one-shot jobs
            assert spec["restart"] == "no"
            continue
        assert spec["restart"] == "unless-stopped", name
        assert "healthcheck" in spec, name
        if name.startswith("celery-"):
            assert "ports" not in spec, f"{name} must scale: no published ports"
            assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
            assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    mounts = dict(v.split(":")[:2] for v in services["celery-video-render"]["volumes"])  # source:target[:mode]
    assert {"/data/renders", "/data/previews", "/data/tmp"} <= set(mounts.values())
    assert set(mounts) <= set(config["volumes"]), "shared media lives in named volumes"


def test_image_installs_ffmpeg_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*ffmpeg", dockerfile)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'pip install ".[${EXTRAS}]"' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_storage_profile_adds_minio_and_passes_storage_settings() -> None:
    result = compose("--profile", "storage", "config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    minio, init = services["minio"], services["minio-init"]
    assert minio["restart"] == "unless-stopped" and "healthcheck" in minio and init["restart"] == "no"
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert all(str(p).startswith("127.0.0.1:") for p in minio.get("ports", [])), "the console stays on loopback"
    # The store's root user is the workers' S3 key, both read from Docker secrets (never the environment).
    assert minio["environment"]["MINIO_ROOT_PASSWORD_FILE"] == "/run/secrets/aws_secret_access_key"
    assert "MINIO_ROOT_PASSWORD" not in minio["environment"]
    for name in ("api", "celery-video-render", "celery-ml"):
        assert {"S3_ENDPOINT_URL", "STORAGE_BUCKETS", "OUTPUT_URL", "INDEX_URL"} <= set(services[name]["environment"])
        assert services[name]["environment"]["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/aws_secret_access_key"
        assert {"aws_access_key_id", "aws_secret_access_key"} <= {
            s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}
