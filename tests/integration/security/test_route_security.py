"""Every route of the OpenAPI document × (no key, wrong key, non-ASCII key, key without the scope, another
tenant's key) answers as documented: 401, 401, 401, 403, 404 (or filtered lists).

The cases are generated from ``app.openapi()``, so a route added later is checked without anyone
remembering to: a route without a security requirement fails unless it is in ``PUBLIC``, and a secured
route fails until ``OTHER_TENANT`` says how another tenant's key must be answered there. The keys are
real rows of ``api_keys`` in a freshly migrated SQLite database; the app runs in process (ASGI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geminivideo.api.app import create_app
from geminivideo.db.migrate import upgrade
from geminivideo.db.models import Ad, Tenant, TenantPipeline, VideoJob, WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals
from geminivideo.security.keys import Scope
from tests.support.env import applied, create_test_key

PUBLIC = {("get", "/health"), ("post", "/api/webhooks/hubspot")}
LOOPBACK = ("127.0.0.1", 50000)
NON_ADMIN = [s for s in Scope if s is not Scope.ADMIN]


@dataclass
class World:
    """Keys and tenant B's objects, which tenant A's key must not reach."""

    admin: str
    tenant_a: str
    without: dict[Scope, str]
    ad_b: str
    job_b: str
    change_b: int
    event_b: str
    tenant_b: str


def _seed_tenant_b(tenant: str) -> tuple[str, str, int, str]:
    ad_id, job_id, event_key = f"ad-{tenant}", str(uuid.uuid4()), f"evt-{tenant}"
    with session_scope() as session:
        session.add(Tenant(id=tenant))
        session.flush()
        session.add(Ad(id=ad_id, tenant_id=tenant, campaign_id=f"cmp-{tenant}", daily_budget=50))
        session.add(VideoJob(task_id=job_id, kind="preview", payload={}, status="queued", tenant_id=tenant))
        session.add(TenantPipeline(tenant_id=tenant, portal_id=4242, config={}))
        session.add(WebhookEvent(idempotency_key=event_key, source="hubspot", event_type="deal.propertyChange",
                                 portal_id=4242, payload={"portalId": 4242}))
    change = approvals.propose_change(ad_id, "pause", None, reason="security test")
    assert change is not None
    return ad_id, job_id, change.id, event_key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = f"sqlite:///{tmp_path_factory.mktemp('security') / 'security.db'}"
    upgrade(url)
    with applied({"DATABASE_URL": url, "API_AUTH": "on", "API_KEYS": ""}):
        run = uuid.uuid4().hex[:6]
        tenant_b = f"sec-b-{run}"
        ad_b, job_b, change_b, event_b = _seed_tenant_b(tenant_b)
        yield World(
            admin=create_test_key(f"admin-{run}", [Scope.ADMIN]),
            tenant_a=create_test_key(f"tenant-a-{run}", NON_ADMIN, tenant_id=f"sec-a-{run}"),
            without={s: create_test_key(f"no-{s.value.replace(':', '-')}-{run}", [x for x in NON_ADMIN if x is not s])
                     for s in Scope},
            ad_b=ad_b, job_b=job_b, change_b=change_b, event_b=event_b, tenant_b=tenant_b,
        )


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(), client=LOOPBACK) as test_client:
        yield test_client


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = create_app().openapi()
    return [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def _secured() -> list[tuple[str, str, list[str]]]:
    """Operations that take an API key, with their scopes (a route may use another scheme, e.g. a bearer token)."""
    return [(m, p, req["ApiKey"]) for m, p, op in _operations() for req in op.get("security", []) if "ApiKey" in req]


# How another tenant's key is answered: 404 for objects of tenant B (same as a missing one), "filtered"
# for lists (tenant B's rows left out), 403 where only a tenant-less admin may act, None where the route
# touches no tenant's object. Requests name tenant B's objects through path, query and body.
NO_TENANT_OBJECT = {("post", f"/api/video/{kind}") for kind in ("render", "preview", "transcode", "caption")}


def _other_tenant(w: World) -> dict[tuple[str, str], tuple[Any, dict[str, Any]]]:
    b_ads = {"ad_ids": [w.ad_b]}
    return {
        ("get", "/api/webhooks/hubspot/events"): ("filtered", {}),
        ("get", "/api/webhooks/hubspot/events/{key}"): (404, {}),
        ("put", "/api/webhooks/pipelines/{tenant_id}"): (403, {"json": {"stages": {}, "average_deal_value": 1}}),
        ("post", "/api/ml/attribution/track-click"): (404, {"json": {"ad_id": w.ad_b, "click_id": "c1"}}),
        ("post", "/api/ml/battle-hardened/feedback"): (404, {"json": {"ad_id": w.ad_b, "conversions": 1}}),
        **{route: (None, {}) for route in NO_TENANT_OBJECT},
        ("get", "/api/jobs"): ("filtered", {}),
        ("get", "/api/jobs/{task_id}"): (404, {}),
        ("delete", "/api/jobs/{task_id}"): (404, {}),
        ("get", "/api/jobs/{task_id}/events"): (404, {}),
        ("get", "/api/jobs/{task_id}/outputs"): (404, {}),
        ("post", "/api/ml/metrics"): (404, {"params": {"tenant_id": w.tenant_b}, "content": b""}),
        ("get", "/api/queues"): (403, {}),  # views of the whole fleet: keys without a tenant only
        ("get", "/api/workers"): (403, {}),
        ("post", "/api/ml/battle-hardened/select"): (404, {"json": b_ads}),
        ("post", "/api/ml/battle-hardened/allocate"): (404, {"json": {**b_ads, "total_budget": 100}}),
        ("get", "/api/ml/fatigue/report"): (404, {"params": {"tenant_id": w.tenant_b}}),
        ("get", "/api/ml/fatigue/ads/{ad_id}"): (404, {}),
        ("post", "/api/ml/fatigue/scan"): (404, {"json": {"tenant_id": w.tenant_b}}),
        ("put", "/api/ml/fatigue/thresholds/{tenant_id}"): (404, {"json": {}}),
        ("get", "/api/ml/approvals"): (404, {"params": {"tenant_id": w.tenant_b}}),
        ("post", "/api/ml/approvals"): (404, {"json": {"ad_id": w.ad_b, "change_type": "pause", "reason": "x"}}),
        ("get", "/api/ml/approvals/{change_id}"): (404, {}),
        ("post", "/api/ml/approvals/{change_id}/approve"): (404, {"json": {"note": "x"}}),
        ("post", "/api/ml/approvals/{change_id}/reject"): (404, {"json": {"note": "x"}}),
        ("get", "/api/ml/rag/search-winners"): (404, {"params": {"q": "a hook", "tenant_id": w.tenant_b}}),
        ("get", "/api/ml/rag/similar/{ad_id}"): (404, {}),
        ("get", "/api/ml/rag/stats"): (403, {}),
    }


def _url(path: str, w: World) -> str:
    return path.format(key=w.event_b, tenant_id=w.tenant_b, task_id=w.job_b, ad_id=w.ad_b, change_id=w.change_b)


def _call(client: TestClient, method: str, path: str, key: str | bytes | None, **kwargs: Any) -> Any:
    headers: dict[str, Any] = {} if key is None else {"X-API-Key": key}
    return client.request(method.upper(), path, headers=headers, **kwargs)


def test_every_route_is_secured_or_listed_as_public() -> None:
    operations = {(m, p) for m, p, _ in _operations()}
    unsecured = {(m, p) for m, p, op in _operations() if not op.get("security")}
    assert unsecured == PUBLIC, f"routes without a key requirement: {sorted(unsecured - PUBLIC)}"
    assert operations >= PUBLIC


def test_every_secured_route_documents_its_refusals_and_has_a_tenant_rule(world: World) -> None:
    rules = _other_tenant(world)
    keyed = {(m, p) for m, p, _ in _secured()}
    for method, path, op in _operations():
        if (method, path) not in keyed:
            continue
        assert {"401", "403", "404"} <= set(op["responses"]), f"{method} {path} does not document 401/403/404"
        assert (method, path) in rules, f"{method.upper()} {path}: say in OTHER_TENANT how another tenant is answered"


@pytest.mark.parametrize(("method", "path", "scopes"), _secured(), ids=lambda v: v if isinstance(v, str) else "")
def test_route_refuses_missing_wrong_and_non_ascii_keys_and_missing_scope(
    client: TestClient, world: World, method: str, path: str, scopes: list[str]
) -> None:
    url = _url(path, world)
    for key in (None, "gv_" + "x" * 43, "clé-ünïcode".encode(), "🔑".encode(), b"\xff\xfe"):
        reply = _call(client, method, url, key)
        assert reply.status_code == 401, f"{method} {path} with key {key!r}: {reply.status_code} {reply.text}"
        assert reply.headers["www-authenticate"] == "ApiKey"
    for scope in scopes:
        reply = _call(client, method, url, world.without[Scope(scope)])
        assert reply.status_code == 403 and scope in reply.text, f"{method} {path} without {scope}: {reply.text}"


# Job submissions name media, not another tenant's object: nothing of tenant B to reach (their key checks are
# in the tests above), so they are not parametrized here rather than skipped.
@pytest.mark.parametrize(("method", "path", "scopes"), [r for r in _secured() if r[:2] not in NO_TENANT_OBJECT],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_another_tenants_key_cannot_reach_tenant_b(
    client: TestClient, world: World, method: str, path: str, scopes: list[str]
) -> None:
    expected, request = _other_tenant(world)[(method, path)]
    assert expected is not None, f"{method} {path} is in NO_TENANT_OBJECT"
    reply = _call(client, method, _url(path, world), world.tenant_a, **request)
    if expected == "filtered":
        assert reply.status_code == 200, reply.text
        text = reply.text
        assert world.job_b not in text and world.event_b not in text and world.tenant_b not in text
        admin = _call(client, method, _url(path, world), world.admin, **request)
        assert admin.status_code == 200 and (world.job_b in admin.text or world.event_b in admin.text)
    else:
        assert reply.status_code == expected, f"{method} {path}: {reply.status_code} {reply.text}"


def test_tenant_b_objects_are_reachable_by_an_admin_key(client: TestClient, world: World) -> None:
    """The 404s above are about the tenant, not about the objects: an admin key sees them."""
    assert _call(client, "get", f"/api/ml/approvals/{world.change_b}", world.admin).status_code == 200
    assert _call(client, "get", f"/api/webhooks/hubspot/events/{world.event_b}", world.admin).status_code == 200
    listed = _call(client, "get", "/api/ml/approvals", world.admin, params={"tenant_id": world.tenant_b})
    assert listed.json()["count"] == 1


def test_auth_off_serves_loopback_only(tmp_path: Path) -> None:
    with applied({"API_AUTH": "off"}):
        with TestClient(create_app(), client=("10.1.2.3", 40000)) as remote:
            reply = remote.get("/api/queues")
            assert reply.status_code == 403 and "loopback" in reply.text
        with TestClient(create_app(), client=("::1", 40000)) as local:
            assert local.get("/api/ml/approvals").status_code == 200


def test_an_approval_records_the_deciding_keys_name(client: TestClient, world: World) -> None:
    approver_name = f"approver-{uuid.uuid4().hex[:6]}"
    approver = create_test_key(approver_name, [Scope.APPROVALS_DECIDE, Scope.APPROVALS_READ])
    with session_scope() as session:
        ad = Ad(id=f"ad-{approver_name}", tenant_id=world.tenant_b, campaign_id="cmp-approver", daily_budget=20)
        session.add(ad)
    change = approvals.propose_change(f"ad-{approver_name}", "budget", 25, reason="decided_by test")
    assert change is not None
    forged = _call(client, "post", f"/api/ml/approvals/{change.id}/approve", approver,
                   json={"decided_by": "someone-else", "note": "x"})
    assert forged.status_code == 422  # who decided is not the caller's to say
    reply = _call(client, "post", f"/api/ml/approvals/{change.id}/approve", approver, json={"note": "looks right"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["decided_by"] == approver_name
    assert approvals.show_change(change.id).decided_by == approver_name
