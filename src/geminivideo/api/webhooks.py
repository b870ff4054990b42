"""HubSpot webhook ingestion, click tracking, sampler feedback and a view of stored events.

``POST /api/webhooks/hubspot`` checks the signature on the raw bytes before parsing anything, stores
each event once and enqueues it, and answers 200 as soon as that is done (HubSpot retries any other
answer, so events that are valid but not deal-stage changes are stored and acknowledged too).
Settings are read per request through a dependency, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import sqlalchemy.exc
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from geminivideo.api.auth import Admin, AdsWrite, Principal, WebhooksRead, ads_or_404
from geminivideo.config import Settings, get_settings
from geminivideo.contracts import PipelineConfig, SamplerFeedback, TrackClick, utcnow
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload, TransientError
from geminivideo.ml.decisions.sampler_feedback import record_feedback
from geminivideo.ml.webhooks import attribution
from geminivideo.ml.webhooks import pipeline as hubspot
from geminivideo.ml.webhooks import store as webhook_store
from geminivideo.ml.webhooks.signature import SignatureRejected, verify
from geminivideo.telemetry import domain as telemetry

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def _secret(settings: Settings) -> str | None:
    secret = settings.hubspot_client_secret
    return (secret.get_secret_value() or None) if secret is not None else None


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    if not settings.hubspot_verify_signatures:
        log.warning("HUBSPOT_VERIFY_SIGNATURES=false: /api/webhooks/hubspot accepts UNSIGNED requests")
    elif _secret(settings) is None:
        log.warning("HUBSPOT_CLIENT_SECRET is not set: /api/webhooks/hubspot refuses every request (503)")
    yield


router = APIRouter(lifespan=_lifespan)
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body of {declared} bytes exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def signed_uri(settings: Settings, request: Request) -> str:
    """The URL HubSpot signed: ``PUBLIC_BASE_URL`` + path and query when set (a proxy in front rewrites the
    host and scheme), else the request's own (uvicorn applies trusted X-Forwarded-* from FORWARDED_ALLOW_IPS)."""
    if settings.public_base_url is None:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return settings.public_base_url.rstrip("/") + request.url.path + query


def _check_signature(settings: Settings, request: Request, body: bytes) -> str:
    if not settings.hubspot_verify_signatures:
        return "unverified"
    secret = _secret(settings)
    if secret is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "HUBSPOT_CLIENT_SECRET is not configured, so signatures cannot be checked "
            "(set it, or HUBSPOT_VERIFY_SIGNATURES=false for local testing only)",
        )
    try:
        return verify(secret, method=request.method, uri=signed_uri(settings, request), body=body,
                      headers=request.headers, versions=settings.hubspot_signature_versions)
    except SignatureRejected as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None


@router.post("/api/webhooks/hubspot", tags=["webhooks"])
async def hubspot_webhook(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """HubSpot's event array (up to 100) or one internal deal-stage object; 200 once stored and enqueued."""
    received_at = utcnow()
    body = await _read_capped(request, MAX_BODY_BYTES)
    verified = _check_signature(settings, request, body)
    try:
        report = await run_in_threadpool(hubspot.ingest, body, received_at=received_at)
    except InvalidPayload as exc:  # the documented exception to api/errors.py: HubSpot's own contract is a 400
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, TransientError) as exc:
        log.warning("webhook not stored, asking the sender to retry: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "events could not be stored; retry later") from None
    telemetry.webhook_ingested(report.received, report.stored)
    # vars(), not asdict(): asdict deep-copies the 100 per-event dicts, ~5% of the request's CPU (py-spy).
    return {"signature": verified, **vars(report)}


def _in_session(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with session_scope() as session:
        return fn(session, *args, **kwargs)


def _portals(principal: Principal) -> list[int] | None:
    """A tenant key reads only the events of its tenant's HubSpot portals; None: every event."""
    if principal.tenant_id is None:
        return None
    return list(_in_session(webhook_store.tenant_portals, principal.tenant_id))


@router.get("/api/webhooks/hubspot/events", tags=["webhooks"])
def list_webhook_events(
    principal: WebhooksRead,
    status_: Annotated[str | None, Query(alias="status", pattern=r"^[a-z]{1,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Stored events, newest first; ``?status=failed`` lists the ones that need a person."""
    return _in_session(webhook_store.list_events, status=status_, limit=limit, portals=_portals(principal))


@router.get("/api/webhooks/hubspot/events/{key}", tags=["webhooks"])
def get_webhook_event(key: str, principal: WebhooksRead) -> dict[str, Any]:
    """One stored event by its idempotency key (as returned by the webhook endpoint)."""
    event = _in_session(webhook_store.get_event, key, portals=_portals(principal))
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook event with key {key!r}")
    return event


@router.put("/api/webhooks/pipelines/{tenant_id}", tags=["webhooks"])
def put_pipeline(tenant_id: str, config: PipelineConfig, principal: Admin) -> dict[str, Any]:
    """Set a tenant's deal pipeline (stage probabilities or fixed values, average deal value, portal)."""
    _in_session(hubspot.save_pipeline, tenant_id, config)  # a portal_id of another tenant: Conflict, 409
    return {"tenant_id": tenant_id, **config.model_dump(mode="json")}


@router.post("/api/ml/attribution/track-click", tags=["attribution"], status_code=status.HTTP_201_CREATED)
def track_click(click: TrackClick, principal: AdsWrite) -> dict[str, Any]:
    """Record an ad click with its identifiers (fingerprint components are hashed here)."""
    ads_or_404(principal, [click.ad_id])
    if principal.tenant_id is not None:
        click = click.model_copy(update={"tenant_id": principal.tenant_id})
    def _record(session: Any) -> dict[str, Any]:
        row = attribution.record_click(session, click)
        return {"id": row.id, "ad_id": row.ad_id, "fingerprint_hash": row.fingerprint_hash,
                "clicked_at": row.clicked_at}

    return _in_session(_record)


@router.post("/api/ml/battle-hardened/feedback", tags=["sampler"])
def sampler_feedback(feedback: SamplerFeedback, principal: AdsWrite) -> dict[str, Any]:
    """Add external outcome feedback to an ad's sampler state (once per ``feedback_id``)."""
    ads_or_404(principal, [feedback.ad_id])
    applied, state = _in_session(record_feedback, feedback)  # an unknown ad: NotFound, 404
    return {"applied": applied, "state": state}
