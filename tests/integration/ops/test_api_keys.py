"""With authentication on (the default), every route of every router refuses a request without a valid
X-API-Key (401), except the two that must stay open: the health check and HubSpot's webhook, which HubSpot
signs instead.

The routes are read from the application's OpenAPI document, so a router added later is covered without
editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from geminivideo.api.app import create_app
from tests.support.env import applied

OPEN = {("GET", "/health"), ("POST", "/api/webhooks/hubspot")}
KEY_REFUSED = {"missing X-API-Key header", "invalid or revoked X-API-Key"}


def _routes() -> list[tuple[str, str]]:
    # From the OpenAPI document: FastAPI wraps included routers, and every route of ours is documented.
    paths = create_app().openapi()["paths"]
    return sorted((method.upper(), path) for path, methods in paths.items() for method in methods)


def _url(path: str) -> str:
    # Any value fits the path parameters: the key is checked before the parameters are looked at.
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1).endswith("_id") and "change" in m.group(1) else "x", path)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # The test session runs with API_AUTH=off; here authentication is on, as it is by default.
    with applied({"API_AUTH": "on", "API_KEYS": "key-one,key-two"}), TestClient(create_app()) as test_client:
        yield test_client


def test_the_open_routes_exist() -> None:
    assert set(_routes()) >= OPEN, "a route of OPEN is gone: update the list"


PROTECTED = [r for r in _routes() if r not in OPEN]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_a_protected_route_refuses_a_missing_or_wrong_key(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "key-three"}, {"X-API-Key": ""}):
        reply = client.request(method, _url(path), headers=headers, json={})
        assert reply.status_code == 401, (method, path, headers, reply.status_code, reply.text)
        assert reply.json()["detail"] in KEY_REFUSED and reply.headers["www-authenticate"] == "ApiKey"


@pytest.mark.parametrize(("method", "path"), sorted(OPEN), ids=[f"{m} {p}" for m, p in sorted(OPEN)])
def test_the_open_routes_ask_for_no_key(client: TestClient, method: str, path: str) -> None:
    reply = client.request(method, path, content=b"[]")
    assert reply.json().get("detail") not in KEY_REFUSED, reply.text


def test_a_valid_key_is_let_through(client: TestClient) -> None:
    for key in ("key-one", "key-two"):  # reaches the payload check: 422, no work started
        reply = client.post("/api/video/render", headers={"X-API-Key": key}, json={})
        assert reply.status_code == 422 and "scenes" in reply.text, reply.text
