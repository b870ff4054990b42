"""Given a HubSpot deal-stage change stored by the API and picked up by an ML worker, when the worker is killed
with ``kill -9`` while the task waits on the CRM (before its transaction), then another worker applies the change
exactly once: one conversion, one credit on the deal and on the ad, the event ``processed``.

RabbitMQ redelivers at once. On Redis the same change comes back once the dead worker's lease lapses
(LEASE_TIMEOUT_S; measured with real video tasks in test_worker_killed.py and test_leases.py, where a webhook
batch taken over mid-flight is also checked), so that variant is not repeated here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from geminivideo import procs
from tests.reliability.conftest import MakeDeployment
from tests.reliability.hubspot_stack import CrmStandIn, WebhookStack, crm_stand_in, post_three_deal_batch, unique
from tests.support import faults

pytestmark = [pytest.mark.reliability]


@dataclass
class SlowCrmStack:
    """API and a first ("victim") ML worker on RabbitMQ and PostgreSQL, with a CRM that answers after 3 s."""

    crm: CrmStandIn
    stack: WebhookStack
    base: str
    victim: procs.ManagedProcess


@pytest.fixture
def slow_crm(deployment: MakeDeployment, rabbit_url: str, pg_database: str) -> Iterator[SlowCrmStack]:
    with crm_stand_in(delay_s=3) as crm:
        dep = deployment(broker_url=rabbit_url, DATABASE_URL=pg_database, HUBSPOT_ACCESS_TOKEN="test-token",
                         HUBSPOT_API_BASE_URL=crm.url)
        stack = WebhookStack(dep)
        base = stack.start_api()
        yield SlowCrmStack(crm, stack, base, stack.worker("victim"))


def test_webhook_task_killed_mid_flight_is_applied_once(slow_crm: SlowCrmStack) -> None:
    crm, stack, base, victim = slow_crm.crm, slow_crm.stack, slow_crm.base, slow_crm.victim
    tenant, ad = stack.make_ad()
    fbclid, at = unique("fb"), datetime.now(UTC) - timedelta(hours=1)
    stack.track_click(base, ad, tenant, fbclid, (at - timedelta(hours=1)).isoformat())
    deal = unique("deal")
    response = stack.post(base, {"dealId": deal, "stageTo": "closedwon", "dealValue": 10000, "tenantId": tenant,
                                 "fbclid": fbclid, "occurredAt": at.isoformat()})
    assert response.status_code == 200, response.text
    key = response.json()["events"][0]["key"]
    faults.wait_for(lambda: crm.hits_for(deal) == 1, 60, "the task asked the CRM")
    killed_at = time.monotonic()
    faults.kill9(victim)
    stack.worker("rescuer")
    event = stack.wait_final([key])[key]
    print(f"kill -9 of a webhook task (rabbitmq): applied {time.monotonic() - killed_at:.1f} s after the kill")
    books = stack.books(tenant, deal, ad)
    assert event["status"] == "processed", event
    assert books.conversions == [("closedwon", 10000.0)]
    assert books.credited_value == 10000.0
    assert books.sampler_pipeline_value == 10000.0 and books.sampler_feedback_count == 1
    assert crm.hits_for(deal) == 2  # the killed attempt and the one that applied it


def test_batch_killed_between_events_applies_each_event_once(slow_crm: SlowCrmStack) -> None:
    """A signed HubSpot batch of three deals is one message; the worker is killed while the second deal waits
    on the CRM. The redelivered batch skips the first deal (already applied, the CRM is not asked again) and
    applies the other two once."""
    crm, stack, base, victim = slow_crm.crm, slow_crm.stack, slow_crm.base, slow_crm.victim
    portal, deals, keys = post_three_deal_batch(stack, base)
    faults.wait_for(lambda: crm.hits_for(deals[1]) == 1, 60, "the batch reached its second deal")
    faults.kill9(victim)
    stack.worker("rescuer")
    events = stack.wait_final(keys)
    tenant = f"hubspot-portal-{portal}"
    books = [stack.books(tenant, deal) for deal in deals]
    assert [e["status"] for e in events.values()] == ["processed"] * 3, events
    assert [b.conversions for b in books] == [[("contractsent", 9000.0)]] * 3  # 10,000 average × 0.9
    assert [crm.hits_for(deal) for deal in deals] == [1, 2, 1]
