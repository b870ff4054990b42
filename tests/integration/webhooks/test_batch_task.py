"""``process_hubspot_events`` in a real worker: a CRM outage mid-batch retries only what was not applied.

The worker reads deal amounts from a stand-in HubSpot CRM (a real HTTP server on loopback) that answers
the first deal, then fails three times (the client's attempts for the second deal), then recovers. The
first event is applied once; the message is retried with backoff carrying only the other two.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery

from geminivideo import procs
from geminivideo.contracts import QueueName, TaskName
from geminivideo.errors import InvalidPayload
from tests.integration.webhooks.support import DEAL, FakeHubSpot, conversions, fake_hubspot, make_ad, unique
from tests.support import env as test_support

REDIS_DB = 10  # this module's own broker database: no other worker takes its messages
pytestmark = pytest.mark.slow
CrmWorker = tuple[FakeHubSpot, procs.ManagedProcess, Celery]


@pytest.fixture(scope="module")
def crm_worker(test_env: test_support.TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmWorker]:
    redis_url = test_env.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    with fake_hubspot() as (crm, base):
        env = test_env.process_env(REDIS_URL=redis_url, HUBSPOT_ACCESS_TOKEN="pat-batch", HUBSPOT_API_BASE_URL=base)
        worker = procs.start_worker("ml", queues=[str(QueueName.HUBSPOT_WEBHOOK_EVENTS)],
                                    hostname=f"ml-batch-{uuid.uuid4().hex[:6]}@localhost", env=env,
                                    log_path=tmp_path_factory.mktemp("batch-task") / "worker.log")
        client = Celery("batch-test", broker=redis_url, backend=redis_url, set_as_current=False)
        try:
            yield crm, worker, client
        finally:
            client.close()
            worker.stop()


def three_deals(stage: str) -> tuple[list[str], list[dict[str, str]]]:
    """Three new deals of a fresh tenant moving to ``stage`` five minutes ago, as a batch."""
    tenant, _ = make_ad()
    at = datetime.now(UTC) - timedelta(minutes=5)
    deals = [unique("deal") for _ in range(3)]
    return deals, [{"dealId": deal, "stageTo": stage, "tenantId": tenant, "occurredAt": at.isoformat()}
                   for deal in deals]


def test_a_crm_outage_mid_batch_retries_only_the_events_not_applied(crm_worker: CrmWorker) -> None:
    crm, worker, client = crm_worker
    deals, batch = three_deals("contractsent")
    crm.script = [(200, {}, DEAL), *[(503, {}, {"status": "error"})] * 3]

    result = client.send_task(str(TaskName.PROCESS_HUBSPOT_EVENTS), args=[batch],
                              queue=str(QueueName.HUBSPOT_WEBHOOK_EVENTS))
    summary = result.get(timeout=90)

    # The final run is the retry: it carried the two deferred events only.
    assert summary["events"] == 2 and summary["processed"] == 2 and summary["deferred"] == 0, worker.log_tail(40)
    assert "Retry in" in worker.log_tail(200) and "2 of 3 events deferred" in worker.log_tail(200)
    hits = [sum(f"/deals/{deal}?" in r["path"] for r in crm.requests) for deal in deals]
    assert hits == [1, 3 + 1, 1]
    assert [[c.credit for c in conversions(deal)] for deal in deals] == [[pytest.approx(11250.45)]] * 3


def test_a_malformed_message_fails_at_once_without_retries(crm_worker: CrmWorker) -> None:
    _, worker, client = crm_worker
    for args, message in (([[{"dealId": "d"}, 5]], "a list of deal-stage change objects"),
                          ([[{"dealId": "d", "stageTo": "x"}] * 101], "101 events in one message")):
        result = client.send_task(str(TaskName.PROCESS_HUBSPOT_EVENTS), args=args,
                                  queue=str(QueueName.HUBSPOT_WEBHOOK_EVENTS))
        with pytest.raises(InvalidPayload, match=message):
            result.get(timeout=60)
        assert result.state == "FAILURE" and "Retry in" not in worker.log_tail(200).split(result.id)[-1]


def test_a_batch_cut_off_by_its_soft_time_limit_continues_in_a_new_message(crm_worker: CrmWorker) -> None:
    """A slow CRM (2 s per deal) and a 3 s soft limit: the limit fires during the second deal's request."""
    crm, worker, client = crm_worker
    deals, batch = three_deals("qualifiedtobuy")
    crm.delay_s = 2.0
    try:
        result = client.send_task(str(TaskName.PROCESS_HUBSPOT_EVENTS), args=[batch], soft_time_limit=3,
                                  queue=str(QueueName.HUBSPOT_WEBHOOK_EVENTS))
        summary = result.get(timeout=60)
        assert summary["processed"] == 1 and summary["continued"] == 2, worker.log_tail(40)
        deadline = time.monotonic() + 60
        while any(not conversions(deal) for deal in deals) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        crm.delay_s = 0.0
    assert [[c.credit for c in conversions(deal)] for deal in deals] == [[pytest.approx(5000.2)]] * 3
    hits = [sum(f"/deals/{deal}?" in r["path"] for r in crm.requests) for deal in deals]
    assert hits == [1, 2, 1]  # the interrupted request is asked again by the continuation, nothing else
