"""One boto3 S3 client per process, built from the settings on first use (never at import).

SigV4 always (botocore presigns with SigV2 unless told, and S3-compatible stores refuse it), path-style
addressing (works with every S3-compatible endpoint and with bucket names that contain dots), bounded
retries with botocore's standard backoff, and a Content-MD5 on DeleteObjects (Swift's s3api requires
it; botocore sends only a CRC32). Credentials come from the settings or their ``_FILE`` forms and are
only ever handed to botocore.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from pydantic import SecretStr

from geminivideo.config import Settings, get_settings

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 3  # botocore's own retries inside one call; the task's retries come on top
MAX_POOL_CONNECTIONS = 32  # multipart parts run in parallel on one client

_lock = threading.Lock()
_clients: dict[tuple[int, int], BaseClient] = {}


def _secret(settings: Settings, name: str) -> str | None:
    """``NAME`` (or the file ``NAME_FILE`` names: config.py reads it, for Docker/Kubernetes secrets)."""
    value: SecretStr | None = getattr(settings, name)
    return (value.get_secret_value() or None) if value is not None else None


def _content_md5(params: dict[str, Any], **_: Any) -> None:
    body = params.get("body", b"")
    if isinstance(body, bytes) and "Content-MD5" not in params["headers"]:
        params["headers"]["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def build_client(settings: Settings) -> BaseClient:
    config = Config(
        signature_version="s3v4", s3={"addressing_style": "path"}, region_name=settings.aws_region,
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"}, max_pool_connections=MAX_POOL_CONNECTIONS,
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=_secret(settings, "aws_access_key_id"),
        aws_secret_access_key=_secret(settings, "aws_secret_access_key"), region_name=settings.aws_region,
    )
    client = session.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)
    client.meta.events.register("before-call.s3.DeleteObjects", _content_md5)
    return client


def s3_client() -> BaseClient:
    """The process's client; a forked child (prefork pool) builds its own instead of sharing sockets."""
    settings = get_settings()
    key = (os.getpid(), id(settings))
    with _lock:
        client = _clients.get(key)
        if client is None:
            _clients.clear()
            client = _clients[key] = build_client(settings)
        return client


def reset_client() -> None:
    with _lock:
        _clients.clear()
