"""Who is calling and what they may do: the one sign-in path of the API (and of the web console).

``authenticate(raw_key)`` turns an ``X-API-Key`` value into a ``Principal`` (name, scopes, tenant) or
None. Routes declare what they need with the ``Security`` aliases below (``JobsRead``, ``ApprovalsDecide``…),
so the OpenAPI document lists each route's scope and the security tests are generated from it.
No key or an unknown key is a 401, a key without the scope a 403, another tenant's object a 404 (the
same answer as a missing one, so ids of other tenants cannot be probed).

Authentication is never off by accident: with ``API_AUTH=on`` (the default) the API refuses to start
until a key exists (``API_KEYS`` or ``geminivideo keys create``). ``API_AUTH=off`` is for a developer's
machine: every loopback client is an admin named ``local``, and any other client is refused.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, SecurityScopes
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from geminivideo.config import get_settings
from geminivideo.db.models import Ad
from geminivideo.db.session import session_scope
from geminivideo.errors import ConfigError
from geminivideo.security import masking
from geminivideo.security.keys import Principal, Scope, active_key_count, authenticate_token

log = logging.getLogger(__name__)

__all__ = [
    "Admin",
    "AdsRead",
    "AdsWrite",
    "AnyKey",
    "ApprovalsDecide",
    "ApprovalsRead",
    "JobsRead",
    "JobsWrite",
    "MetricsRead",
    "Principal",
    "Scope",
    "WebhooksRead",
    "ads_or_404",
    "authenticate",
    "current_principal",
    "document_security",
    "fleet_wide",
    "require_scope",
    "tenant_or_404",
]

LOCAL_PRINCIPAL = Principal(name="local", scopes=frozenset({Scope.ADMIN}))
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey",
                        description="An API key (geminivideo keys create, or API_KEYS for bootstrap admin keys).")
_UNAUTHORIZED = {"WWW-Authenticate": "ApiKey"}


def authenticate(raw_key: str | bytes | None) -> Principal | None:
    """The principal of an API key, or None: the function every sign-in (API, console) goes through.

    Blocking (it may read the key table): call it from a thread in async code.
    """
    return authenticate_token(raw_key, get_settings().api_keys)


# Starlette's in-process TestClient reports this host; no socket peer can have it (uvicorn gives addresses).
_IN_PROCESS_CLIENT = "testclient"


def _is_loopback(request: Request) -> bool:
    if request.client is None:  # a Unix socket: only local processes can reach it
        return True
    if request.client.host == _IN_PROCESS_CLIENT:
        return True
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def _principal(request: Request, raw_key: str | None) -> Principal:
    if get_settings().api_auth == "off":
        if not _is_loopback(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "API_AUTH=off: only loopback clients are served")
        return LOCAL_PRINCIPAL
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    if raw_key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", _UNAUTHORIZED)
    try:
        principal = await run_in_threadpool(authenticate, raw_key)
    except SQLAlchemyError as exc:
        log.warning("API key lookup failed: %s", type(exc).__name__)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "key store (database) unavailable") from None
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked X-API-Key", _UNAUTHORIZED)
    request.state.principal = principal
    return principal


async def current_principal(
    request: Request, security_scopes: SecurityScopes, raw_key: Annotated[str | None, Security(_API_KEY)] = None,
) -> Principal:
    """Dependency: the caller, checked for every scope the route declares (401 without a key, 403 without scope)."""
    principal = await _principal(request, raw_key)
    missing = [s for s in security_scopes.scopes if not principal.allows(Scope(s))]
    if missing:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"key {principal.name!r} lacks scope {', '.join(missing)}")
    return principal


def require_scope(*scopes: Scope) -> object:
    """``Security`` marker for a route parameter or ``dependencies=[...]``: the caller must hold every scope."""
    return Security(current_principal, scopes=[s.value for s in scopes])


AnyKey = Annotated[Principal, Security(current_principal)]
JobsRead = Annotated[Principal, Security(current_principal, scopes=[Scope.JOBS_READ.value])]
JobsWrite = Annotated[Principal, Security(current_principal, scopes=[Scope.JOBS_WRITE.value])]
ApprovalsRead = Annotated[Principal, Security(current_principal, scopes=[Scope.APPROVALS_READ.value])]
ApprovalsDecide = Annotated[Principal, Security(current_principal, scopes=[Scope.APPROVALS_DECIDE.value])]
WebhooksRead = Annotated[Principal, Security(current_principal, scopes=[Scope.WEBHOOKS_READ.value])]
MetricsRead = Annotated[Principal, Security(current_principal, scopes=[Scope.METRICS_READ.value])]
AdsRead = Annotated[Principal, Security(current_principal, scopes=[Scope.ADS_READ.value])]
AdsWrite = Annotated[Principal, Security(current_principal, scopes=[Scope.ADS_WRITE.value])]
Admin = Annotated[Principal, Security(current_principal, scopes=[Scope.ADMIN.value])]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")


def tenant_or_404(principal: Principal, requested: str | None, what: str = "such tenant") -> str | None:
    """The tenant a query may read: the key's own (a different one asked for is a 404), else ``requested``."""
    if principal.tenant_id is None:
        return requested
    if requested is not None and requested != principal.tenant_id:
        raise not_found(what)
    return principal.tenant_id


def fleet_wide(principal: Principal) -> None:
    """403 for a tenant's key on views of the whole fleet (workers' active tasks, queue and index totals)."""
    if principal.tenant_id is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"key {principal.name!r} is limited to tenant {principal.tenant_id!r}; "
                            "this view covers every tenant")


def ads_or_404(principal: Principal, ad_ids: Iterable[str]) -> None:
    """404 unless every ad exists in the key's tenant (nothing to check for a key that sees every tenant)."""
    if principal.tenant_id is None:
        return
    wanted = set(ad_ids)
    if not wanted:
        return
    with session_scope() as session:
        owned = set(session.scalars(select(Ad.id).where(Ad.id.in_(wanted), Ad.tenant_id == principal.tenant_id)))
    missing = sorted(wanted - owned)
    if missing:
        raise not_found(f"ad {missing[0]!r}")


def check_startup() -> None:
    """Refuse to serve with authentication on and no key that could ever pass it."""
    settings = get_settings()
    if settings.api_auth == "off":
        log.warning("API_AUTH=off: authentication is DISABLED; only loopback clients are served, each as admin")
        return
    if settings.api_keys:
        return
    try:
        count = active_key_count()
    except SQLAlchemyError as exc:  # requests are still refused without a key; say why none can be checked
        log.warning("cannot count API keys (%s): every request needs a key the database confirms", type(exc).__name__)
        return
    if count == 0:
        raise ConfigError(
            "no API key exists, so nobody could use the API: create one with "
            "'geminivideo keys create NAME --scope admin', or set API_KEYS (bootstrap admin keys), "
            "or API_AUTH=off on a developer machine (loopback clients only)"
        )


AUTH_RESPONSES: dict[str, dict[str, str]] = {
    "401": {"description": "No X-API-Key, or one that is unknown or revoked"},
    "403": {"description": "The key lacks the route's scope (with API_AUTH=off: the client is not on loopback)"},
    "404": {"description": "Not found; also the answer for an object of another tenant"},
}


def document_security(app: FastAPI) -> None:
    """Add the 401/403/404 answers to every operation that needs a key, so the document says what the
    security tests check (FastAPI lists the scheme and scopes, not the refusals)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if operation.get("security"):
                    for code, answer in AUTH_RESPONSES.items():
                        operation.setdefault("responses", {}).setdefault(code, dict(answer))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    masking.install()  # before anything logs a URL
    await run_in_threadpool(check_startup)
    yield


router = APIRouter(lifespan=_lifespan)
