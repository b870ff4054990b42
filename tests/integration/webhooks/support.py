"""Helpers for the webhook pipeline tests: unique tenants and ads, clicks, and reading the books back."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from geminivideo import procs
from geminivideo.contracts import TrackClick
from geminivideo.db.models import Ad, AdSamplerState, Tenant
from geminivideo.db.models.webhooks import Conversion, DealState, WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.ml.webhooks import attribution
from geminivideo.ml.webhooks.signature import v3_signature

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # HUBSPOT_CLIENT_SECRET of the test environment
WEBHOOK_PATH = "/api/webhooks/hubspot"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_ad(tenant_id: str | None = None) -> tuple[str, str]:
    """A tenant (created if new) and an ad in it; returns (tenant_id, ad_id)."""
    tenant_id = tenant_id or unique("tenant")
    ad_id = unique("ad")
    with session_scope() as session:
        if session.get(Tenant, tenant_id) is None:
            session.add(Tenant(id=tenant_id, name=tenant_id))
            session.flush()
        session.add(Ad(id=ad_id, tenant_id=tenant_id, campaign_id=unique("campaign"), name=ad_id))
    return tenant_id, ad_id


def record_click(ad_id: str, clicked_at: datetime, **identifiers: Any) -> int:
    with session_scope() as session:
        return attribution.record_click(session, TrackClick(ad_id=ad_id, timestamp=clicked_at, **identifiers)).id


def sampler(ad_id: str) -> dict[str, float]:
    with session_scope() as session:
        row = session.get(AdSamplerState, ad_id)
        if row is None:
            return {"pipeline_value": 0.0, "cash_revenue": 0.0, "conversions": 0, "feedback_count": 0}
        return {"pipeline_value": row.pipeline_value, "cash_revenue": row.cash_revenue,
                "conversions": row.conversions, "feedback_count": row.feedback_count}


def conversions(deal_id: str) -> list[Conversion]:
    with session_scope() as session:
        return list(session.scalars(select(Conversion).where(Conversion.deal_id == deal_id).order_by(Conversion.id)))


def deal_state(tenant_id: str, deal_id: str) -> DealState | None:
    with session_scope() as session:
        return session.get(DealState, (tenant_id, deal_id))


def event_rows(object_id: str) -> list[WebhookEvent]:
    with session_scope() as session:
        return list(session.scalars(select(WebhookEvent).where(WebhookEvent.object_id == object_id)))


# ─── Processes and HTTP ─────────────────────────────────────────────────────────────────────────────
def start_api(env: dict[str, str], log_path: Path) -> tuple[procs.ManagedProcess, str]:
    """The real API (uvicorn, one process, info logs) on a free loopback port; returns (process, base URL)."""
    return procs.start_api(env, log_path, uvicorn_args=("--log-level", "info", "--no-access-log"))


def signed_v3(url: str, body: bytes, *, secret: str = SECRET, age_ms: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000) - age_ms)
    return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": v3_signature(secret, "POST", url, body, timestamp)}


def post_signed(client: httpx.Client, payload: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    url = str(client.base_url).rstrip("/") + WEBHOOK_PATH
    return client.post(WEBHOOK_PATH, content=body, headers=signed_v3(url, body))


def wait_final(client: httpx.Client, key: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    event: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"{WEBHOOK_PATH}/events/{key}")
        if response.status_code == 200:
            event = response.json()
            if event["status"] in ("processed", "stale", "ignored", "failed"):
                return event
        time.sleep(0.2)
    raise AssertionError(f"event {key} not final within {timeout_s} s: {event}")


# ─── A local stand-in for HubSpot's CRM API ───────────────────────────────────────────────────────────
# The documented shape of GET /crm/v3/objects/deals/{dealId}?properties=...
DEAL: dict[str, Any] = {
    "id": "512", "archived": False, "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-02T10:00:00.000Z",
    "properties": {"amount": "12500.50", "dealstage": "contractsent", "pipeline": "default", "fbclid": "fb-77",
                   "hs_object_id": "512", "createdate": "2024-05-01T10:00:00.000Z", "gclid": None},
}


class FakeHubSpot:
    """Scripted answers, one per request (then ``default``); records what the client sent."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.default: tuple[int, dict[str, str], Any] = (200, {}, DEAL)
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0  # before each answer: a slow CRM


@contextmanager
def fake_hubspot() -> Iterator[tuple[FakeHubSpot, str]]:
    """A real HTTP server on loopback answering like HubSpot; yields (script, base URL)."""
    fake = FakeHubSpot()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
            time.sleep(fake.delay_s)
            status, headers, body = fake.script.pop(0) if fake.script else fake.default
            raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
