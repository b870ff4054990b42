"""No credentials where they are not needed: webhook signatures checked against the public URL behind a
proxy, direct ``process_hubspot_webhook`` messages carry a masked ``argsrepr``, and a real process that logs
a connection failure to a password-protected Redis writes no password to its log."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from geminivideo import procs
from geminivideo.api.app import create_app
from geminivideo.ml.tasks import process_hubspot_webhook
from tests.integration.webhooks.support import SECRET, WEBHOOK_PATH, signed_v3
from tests.support import env as support_env
from tests.support.env import applied

PUBLIC = "https://hooks.example.com"


@pytest.fixture
def webhook_client() -> Iterator[TestClient]:
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as client:
        yield client


def _deal() -> bytes:
    return json.dumps({"dealId": f"proxy-{uuid.uuid4().hex[:10]}", "stageTo": "appointmentscheduled"}).encode()


def test_signatures_are_checked_against_the_public_base_url(webhook_client: TestClient) -> None:
    body = _deal()
    headers = signed_v3(PUBLIC + WEBHOOK_PATH, body)  # what HubSpot signs: the URL it called
    assert webhook_client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 401
    with applied({"PUBLIC_BASE_URL": PUBLIC + "/"}):
        accepted = webhook_client.post(WEBHOOK_PATH, content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["signature"] == "v3"


def test_legacy_signatures_can_be_refused(webhook_client: TestClient) -> None:
    from geminivideo.ml.webhooks.signature import v1_signature

    body = _deal()
    legacy = {"Content-Type": "application/json", "X-HubSpot-Signature-Version": "v1",
              "X-HubSpot-Signature": v1_signature(SECRET, body)}
    assert webhook_client.post(WEBHOOK_PATH, content=body, headers=legacy).status_code == 200
    with applied({"HUBSPOT_SIGNATURE_VERSIONS": "v3"}):
        refused = webhook_client.post(WEBHOOK_PATH, content=body, headers=legacy)
        assert refused.status_code == 401 and "not accepted" in refused.text


def test_direct_webhook_messages_show_the_event_key_not_the_payload(redis_client: redis.Redis) -> None:
    queue = f"argsrepr-{uuid.uuid4().hex[:8]}"
    event = {"eventKey": "evt-123456789012345", "dealId": "d1", "stageTo": "closedwon",
             "ipAddress": "203.0.113.9", "userAgent": "Secret Browser"}
    process_hubspot_webhook.apply_async(args=[event], queue=queue)
    # With priority steps, kombu keeps one Redis list per step: the queue's name, then a separator and the step.
    lists = [key for key in redis_client.scan_iter(match=f"{queue}*") if redis_client.type(key) == "list"]
    assert len(lists) == 1, lists
    raw = redis_client.lpop(lists[0])
    assert raw is not None
    headers = json.loads(cast(str, raw))["headers"]
    assert headers["argsrepr"] == "[1 events: evt-12345678]"
    assert "203.0.113.9" not in headers["argsrepr"] + headers["kwargsrepr"]


_LOGS_A_FAILURE = """
import logging, sys
from geminivideo.security import masking
masking.install()
logging.basicConfig(level=logging.INFO)
import redis
url = sys.argv[1]
try:
    redis.Redis.from_url(url, socket_connect_timeout=3).ping()
except redis.RedisError as exc:
    logging.getLogger("geminivideo.test").error("redis at %s failed: %s", url, exc)
logging.getLogger("geminivideo.test").warning("database postgresql+psycopg://app:" + sys.argv[2] + "@db/x down")
"""


def test_a_process_logging_connection_failures_writes_no_password() -> None:
    password = f"pw-{uuid.uuid4().hex}"
    unreachable = f"redis://:{password}@127.0.0.1:1/0"  # nothing listens on port 1: a real connection error
    done = subprocess.run([sys.executable, "-c", _LOGS_A_FAILURE, unreachable, password], capture_output=True,
                          text=True, timeout=60, check=True)
    log = done.stdout + done.stderr
    assert "failed" in log and "redis://:***@127.0.0.1:1/0" in log and "app:***@db" in log
    assert password not in log


def test_forwarded_proto_from_a_trusted_proxy_is_part_of_the_signed_url(
    test_env: support_env.TestEnv, tmp_path: Path
) -> None:
    """uvicorn applies X-Forwarded-Proto from FORWARDED_ALLOW_IPS (loopback by default): HubSpot signed https."""
    proc, base = procs.start_api(test_env.process_env(FORWARDED_ALLOW_IPS="127.0.0.1"), tmp_path / "api.log")
    try:
        body = _deal()
        public = base.replace("http://", "https://") + WEBHOOK_PATH
        headers = signed_v3(public, body)
        plain = httpx.post(base + WEBHOOK_PATH, content=body, headers=headers, timeout=30)
        assert plain.status_code == 401  # without the header the API sees http:// and the signature differs
        proxied = httpx.post(base + WEBHOOK_PATH, content=body, headers={**headers, "X-Forwarded-Proto": "https"},
                             timeout=30)
        assert proxied.status_code == 200, proxied.text
    finally:
        proc.stop()
