"""Given a local HTTP server that answers like HubSpot's CRM v3 deals API, the client reads, retries and refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geminivideo.errors import DependencyUnavailable, ProcessingFailed
from geminivideo.ml.webhooks.crm_client import CrmAccessDenied, HubSpotClient
from tests.integration.webhooks.support import DEAL, FakeHubSpot, fake_hubspot


@pytest.fixture
def hubspot() -> Iterator[tuple[FakeHubSpot, str]]:
    with fake_hubspot() as served:
        yield served


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
