"""Fixtures of the ops tests: one isolated deployment (Redis database, SQLite, API, video worker) per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from geminivideo import procs
from geminivideo.contracts import VIDEO_QUEUE_ORDER
from tests.integration.ops.support import make_video, ops_values, start_api
from tests.support import speech
from tests.support.env import TestEnv


@pytest.fixture(scope="module")
def ops_env(test_env: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Child-process environment of this module's deployment."""
    root = tmp_path_factory.mktemp("ops")
    return test_env.process_env(**ops_values(test_env.redis_url, root))


@pytest.fixture(scope="module")
def ops_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ops-logs")


@pytest.fixture(scope="module")
def api(ops_env: dict[str, str], ops_logs: Path) -> Iterator[str]:
    """Base URL of a real uvicorn serving the API against this module's deployment."""
    proc, base = start_api(ops_env, ops_logs / "api.log")
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def ops_video_worker(ops_env: dict[str, str], ops_logs: Path) -> Iterator[procs.ManagedProcess]:
    """One real video worker (concurrency 1) consuming every video queue of this deployment."""
    hostname = f"ops-video-{uuid.uuid4().hex[:6]}@localhost"
    proc = procs.start_worker(
        "video", queues=[str(q) for q in VIDEO_QUEUE_ORDER], hostname=hostname, env=ops_env,
        log_path=ops_logs / f"{hostname}.log", concurrency=1,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sample_video(test_env: TestEnv) -> Path:
    return make_video(test_env.media_dir / f"ops-sample-{uuid.uuid4().hex[:6]}.mp4")


@pytest.fixture(scope="module")
def spoken_video(test_env: TestEnv) -> Path:
    """A short video whose soundtrack speaks two English sentences (espeak-ng), for the caption jobs."""
    out = test_env.media_dir / f"ops-speech-{uuid.uuid4().hex[:6]}.mp4"
    return speech.speech_video(speech.ENGLISH_SENTENCES[:2], out)
