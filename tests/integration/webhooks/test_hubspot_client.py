"""Given a local HTTP server that answers like HubSpot's CRM v3 deals API, the client reads, retries and refuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from geminivideo.errors import DependencyUnavailable, ProcessingFailed
from geminivideo.ml.hubspot_client import CrmAccessDenied, HubSpotClient

# The documented shape of GET /crm/v3/objects/deals/{dealId}?properties=...
DEAL = {
    "id": "512", "archived": False, "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-02T10:00:00.000Z",
    "properties": {"amount": "12500.50", "dealstage": "contractsent", "pipeline": "default", "fbclid": "fb-77",
                   "hs_object_id": "512", "createdate": "2024-05-01T10:00:00.000Z", "gclid": None},
}


class FakeHubSpot:
    """Scripted answers, one per request; records what the client sent."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def hubspot() -> Iterator[tuple[FakeHubSpot, str]]:
    fake = FakeHubSpot()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
            status, headers, body = fake.script.pop(0) if fake.script else (200, {}, DEAL)
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
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def client(base: str, sleeps: list[float] | None = None, attempts: int = 3) -> HubSpotClient:
    record = sleeps if sleeps is not None else []
    return HubSpotClient("pat-test-token", base, timeout_s=2, max_attempts=attempts, sleep=record.append)


def test_reads_amount_stage_and_attribution_properties(hubspot: tuple[FakeHubSpot, str]) -> None:
    fake, base = hubspot
    with client(base) as crm:
        deal = crm.get_deal("512")
    assert deal is not None
    assert (deal.deal_id, deal.amount, deal.stage, deal.pipeline) == ("512", 12500.5, "contractsent", "default")
    assert deal.attribution() == {"fbclid": "fb-77"}
    (request,) = fake.requests
    assert request["auth"] == "Bearer pat-test-token"
    assert request["path"].startswith("/crm/v3/objects/deals/512?properties=amount%2Cdealstage%2Cpipeline")


def test_retries_429_and_5xx_honouring_retry_after(hubspot: tuple[FakeHubSpot, str]) -> None:
    fake, base = hubspot
    fake.script = [(429, {"Retry-After": "2"}, {"status": "error"}), (503, {}, {"status": "error"}), (200, {}, DEAL)]
    sleeps: list[float] = []
    with client(base, sleeps) as crm:
        assert crm.get_deal("512") is not None
    assert len(fake.requests) == 3 and sleeps == [2.0, 1.0]


def test_gives_up_as_a_transient_error(hubspot: tuple[FakeHubSpot, str]) -> None:
    fake, base = hubspot
    fake.script = [(502, {}, {})] * 3
    with client(base) as crm, pytest.raises(DependencyUnavailable, match="after 3 attempts"):
        crm.get_deal("512")


def test_unknown_deal_is_none_and_refused_token_is_permanent(hubspot: tuple[FakeHubSpot, str]) -> None:
    fake, base = hubspot
    fake.script = [(404, {}, {"status": "error", "message": "resource not found"}), (401, {}, {"status": "error"}),
                   (400, {}, {"status": "error"})]
    with client(base) as crm:
        assert crm.get_deal("missing") is None
        with pytest.raises(CrmAccessDenied, match="HUBSPOT_ACCESS_TOKEN"):
            crm.get_deal("512")
        with pytest.raises(ProcessingFailed, match="400"):
            crm.get_deal("512")


def test_unreachable_server_is_transient() -> None:
    with client("http://127.0.0.1:9", attempts=2) as crm, pytest.raises(DependencyUnavailable, match="ConnectError"):
        crm.get_deal("512")
