"""Given the real API (uvicorn) on its own Redis and SQLite database, when every operation of its OpenAPI schema
is called with generated and malformed input (schemathesis), then no answer is a server error; and when the
HubSpot webhook receives correctly *signed* bodies of random or hostile JSON, then it answers 200 (stored) or
400/413 (refused, nothing stored), never 5xx.

Signature, size and auth refusals with named cases are tests/integration/webhooks/test_webhook_http.py,
tests/integration/ops/test_jobs_api.py (X-API-Key 401) and tests/integration/ops/test_flower.py (Flower 401,
default password refused beyond loopback); this module adds the generated inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from sqlalchemy import func, select

from geminivideo.api import create_app
from geminivideo.db.models.webhooks import WebhookEvent
from geminivideo.db.session import session_scope
from tests.integration.webhooks.support import WEBHOOK_PATH, signed_v3
from tests.reliability.conftest import build_deployment, sqlite_database
from tests.support import faults
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*
from tests.support.env import applied

pytestmark = [pytest.mark.reliability]

FUZZ = settings(max_examples=8, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_api(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of one real API for the whole module; no worker: jobs just wait queued."""
    root = tmp_path_factory.mktemp("fuzz")
    database = sqlite_database(root)
    dep = build_deployment(test_env, root, DATABASE_URL=database)
    try:
        proc, base = faults.start_api(dep.env, root / "api.log")
        dep.track(proc)
        yield base, database
        assert proc.alive(), proc.log_tail(40)  # no input crashed the server
    finally:
        dep.close()


# The operations come from the app factory in this process (no settings read, no connection); the calls go to
# the real uvicorn. SSE progress streams stay open by design and are read in tests/integration/ops instead.
SPEC = create_app().openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
MODES = {"valid": GenerationMode.POSITIVE, "malformed": GenerationMode.NEGATIVE}
_CONSTRAINTS = {"pattern", "minLength", "maxLength", "enum", "$ref", "minimum", "maximum", "exclusiveMinimum"}


def _constrained(schema: dict[str, Any]) -> bool:
    """Whether some value of the parameter's type breaks its schema (an unconstrained string cannot be broken)."""
    if "anyOf" in schema:
        return any(_constrained(s) for s in schema["anyOf"] if s.get("type") != "null")
    return schema.get("type", "string") != "string" or bool(_CONSTRAINTS & set(schema))


def _can_be_malformed(op: dict[str, Any]) -> bool:
    return "requestBody" in op or any(_constrained(p["schema"]) for p in op.get("parameters", []))


# Malformed cases only where malformed input exists: a case that sends no request proves nothing, so the strategy
# running out of examples (hypothesis' Unsatisfiable) fails the test instead of passing it.
CASES = [(method.upper(), path, mode) for path, methods in SPEC["paths"].items() for method, op in methods.items()
         if not (path.endswith("/events") and method == "get")
         for mode in MODES if mode == "valid" or _can_be_malformed(op)]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_no_operation_answers_a_server_error(fuzz_api: tuple[str, str], method: str, path: str, mode: str) -> None:
    base, _ = fuzz_api
    operation = SCHEMA[path][method]

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=MODES[mode]))
    def call(case: Any) -> None:
        response = case.call(base_url=base, timeout=60)
        assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
        case.validate_response(response, checks=[not_a_server_error])

    call()


# ─── webhooks: signed hostile bodies ─────────────────────────────────────────────────────────────────
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
hubspot_keys = st.sampled_from(["eventId", "portalId", "occurredAt", "subscriptionType", "objectId", "propertyName",
                                "propertyValue", "dealId", "stageTo", "stageFrom", "dealValue", "tenantId",
                                "occurredAt", "eventKey", "isCreation", "ip_address"])
hubspot_like = st.dictionaries(hubspot_keys, json_values, max_size=8)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(hubspot_like, max_size=5).map(lambda v: json.dumps(v).encode()),
    hubspot_like.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(min_value=60, max_value=3000).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.integers(min_value=60, max_value=3000).map(lambda depth: ('{"a":' * depth + "1" + "}" * depth).encode()),
)


def _stored(database: str) -> int:
    with applied({"DATABASE_URL": database}), session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


@FUZZ
@given(body=bodies)
def test_signed_hostile_webhook_bodies_are_refused_or_stored_never_a_500(fuzz_api: tuple[str, str],
                                                                         body: bytes) -> None:
    base, database = fuzz_api
    before = _stored(database)
    url = base + WEBHOOK_PATH
    response = httpx.post(url, content=body, headers=signed_v3(url, body), timeout=60)
    assert response.status_code in (200, 400, 413), f"{response.status_code}: {response.text[:300]} for {body[:120]!r}"
    after = _stored(database)
    if response.status_code != 200:
        assert after == before, "a refused body stored events"
    else:
        assert after - before <= max(1, len(response.json().get("events", [])))


def test_a_101_event_batch_and_a_2_mib_body_store_nothing(fuzz_api: tuple[str, str]) -> None:
    base, database = fuzz_api
    before = _stored(database)
    event = {"eventId": 1, "portalId": 1, "occurredAt": 1, "subscriptionType": "deal.propertyChange", "objectId": 1,
             "propertyName": "dealstage", "propertyValue": "closedwon"}
    url = base + WEBHOOK_PATH
    for body, expected in ((json.dumps([{**event, "objectId": i} for i in range(101)]).encode(), 400),
                           (b"[" + b" " * (2 * 1024 * 1024) + b"]", 413)):
        response = httpx.post(url, content=body, headers=signed_v3(url, body), timeout=60)
        assert response.status_code == expected, response.text[:300]
    assert _stored(database) == before
