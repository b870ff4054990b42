"""A webhook deployment for the fault scenarios: API processes, ML workers, a database, a stand-in HubSpot CRM.

The CRM stand-in is a real HTTP server on loopback answering the documented deal object, slowly when
asked to, so a test can catch ``process_hubspot_events`` mid-flight (it asks the CRM before its
transaction) and count how often it was asked. The books (conversions, deal state, the ad's sampler
credit) are read straight from the database the workers write.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import func, select

from geminivideo import procs
from geminivideo.db.models import Ad, AdSamplerState, Tenant
from geminivideo.db.models.webhooks import Conversion, DealState, WebhookEvent
from geminivideo.db.session import session_scope
from tests.integration.webhooks.support import WEBHOOK_PATH, signed_v3
from tests.reliability.conftest import Deployment
from tests.support import faults
from tests.support.env import applied

WEBHOOK_QUEUE = "hubspot-webhook-events"
FINAL = ("processed", "stale", "ignored", "failed")


@dataclass
class CrmStandIn:
    """``GET /crm/v3/objects/deals/{id}`` → ``{"id", "properties": {...}}`` after ``delay_s``."""

    delay_s: float = 0.0
    hits: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hits_for(self, deal_id: str) -> int:
        return sum(1 for path in self.hits if f"/deals/{deal_id}?" in path or path.endswith(f"/deals/{deal_id}"))


@contextlib.contextmanager
def crm_stand_in(delay_s: float = 0.0) -> Iterator[CrmStandIn]:
    crm = CrmStandIn(delay_s)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            crm.hits.append(self.path)
            time.sleep(crm.delay_s)
            deal_id = self.path.split("/deals/", 1)[-1].split("?", 1)[0]
            body = json.dumps({"id": deal_id, "properties": {"amount": None, "dealstage": None}}).encode()
            # The asking worker may have been killed meanwhile: a closed socket is expected then.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    crm.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=crm.server.serve_forever, name="crm-stand-in", daemon=True)
    thread.start()
    try:
        yield crm
    finally:
        crm.server.shutdown()
        crm.server.server_close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Books:
    """What the database says happened to one deal and its ad."""

    conversions: list[tuple[str | None, float]]
    credited_value: float | None
    stage: str | None
    sampler_pipeline_value: float
    sampler_feedback_count: int
    events: dict[str, int]  # status -> count


class WebhookStack:
    """One deployment's webhook side; database calls run with the deployment's DATABASE_URL applied."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.apis: list[tuple[procs.ManagedProcess, str]] = []

    def start_api(self, name: str = "api") -> str:
        proc, base = faults.start_api(self.dep.env, self.dep.log_dir / f"{name}-{uuid.uuid4().hex[:4]}.log")
        self.dep.track(proc)
        self.apis.append((proc, base))
        return base

    def worker(self, name: str = "ml", concurrency: int = 1) -> procs.ManagedProcess:
        return self.dep.worker("ml", [WEBHOOK_QUEUE], name=name, concurrency=concurrency)

    @contextlib.contextmanager
    def db(self) -> Iterator[None]:
        with applied({"DATABASE_URL": self.dep.env["DATABASE_URL"], "REDIS_URL": self.dep.env["REDIS_URL"]}):
            yield

    def make_ad(self) -> tuple[str, str]:
        tenant_id, ad_id = unique("tenant"), unique("ad")
        with self.db(), session_scope() as session:
            session.add(Tenant(id=tenant_id, name=tenant_id))
            session.flush()
            session.add(Ad(id=ad_id, tenant_id=tenant_id, campaign_id=unique("campaign"), name=ad_id))
        return tenant_id, ad_id

    def post(self, base: str, payload: Any, *, timeout_s: float = 30) -> httpx.Response:
        body = json.dumps(payload).encode()
        url = base + WEBHOOK_PATH
        return httpx.post(url, content=body, headers=signed_v3(url, body), timeout=timeout_s)

    def track_click(self, base: str, ad_id: str, tenant_id: str, fbclid: str, at: str) -> None:
        response = httpx.post(base + "/api/ml/attribution/track-click", timeout=30,
                              json={"ad_id": ad_id, "tenant_id": tenant_id, "fbclid": fbclid, "timestamp": at})
        assert response.status_code == 201, response.text

    def books(self, tenant_id: str, deal_id: str, ad_id: str | None = None) -> Books:
        with self.db(), session_scope() as session:
            rows = session.scalars(select(Conversion).where(Conversion.deal_id == deal_id).order_by(Conversion.id))
            conversions: list[tuple[str | None, float]] = [(c.stage_to, float(c.credit)) for c in rows]
            deal = session.get(DealState, (tenant_id, deal_id))
            sampler = session.get(AdSamplerState, ad_id) if ad_id else None
            statuses = session.execute(select(WebhookEvent.status, func.count()).where(
                WebhookEvent.object_id == deal_id).group_by(WebhookEvent.status)).all()
        return Books(
            conversions=conversions, credited_value=float(deal.credited_value) if deal else None,
            stage=deal.stage if deal else None,
            sampler_pipeline_value=float(sampler.pipeline_value) if sampler else 0.0,
            sampler_feedback_count=int(sampler.feedback_count) if sampler else 0,
            events={str(status): int(count) for status, count in statuses},
        )

    def event(self, key: str) -> dict[str, Any] | None:
        with self.db(), session_scope() as session:
            row = session.scalars(select(WebhookEvent).where(WebhookEvent.idempotency_key == key)).first()
            if row is None:
                return None
            return {"status": str(row.status), "attempts": row.attempts, "deliveries": row.deliveries,
                    "error": row.error, "result": row.result}

    def wait_final(self, keys: list[str], timeout_s: float = 120) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}

        def done() -> bool:
            for key in keys:
                if key not in found and (event := self.event(key)) and event["status"] in FINAL:
                    found[key] = event
            return len(found) == len(keys)

        faults.wait_for(done, timeout_s, f"{len(keys)} webhook events final", interval_s=0.5)
        return found


def post_three_deal_batch(stack: WebhookStack, base: str) -> tuple[int, list[str], list[str]]:
    """POST one HubSpot batch moving three new deals to ``contractsent`` from a new portal: the portal, the deal
    ids and the stored event keys."""
    portal = int(time.time() * 1000) % 10**9
    at_ms = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    deals = [str(portal * 10 + i) for i in range(3)]
    batch = [{"eventId": i, "subscriptionId": 1, "portalId": portal, "occurredAt": at_ms, "objectId": int(deal),
              "subscriptionType": "deal.propertyChange", "propertyName": "dealstage",
              "propertyValue": "contractsent"} for i, deal in enumerate(deals)]
    response = stack.post(base, batch)
    assert response.status_code == 200 and response.json()["enqueued"] == 3, response.text
    return portal, deals, [e["key"] for e in response.json()["events"]]
