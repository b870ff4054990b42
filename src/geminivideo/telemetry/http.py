"""The API's side of telemetry: request metrics and ids, ``/metrics``, and the one call ``create_app`` makes.

``TelemetryMiddleware`` (plain ASGI, no per-request task or thread) gives every request a ``request_id`` (the
caller's ``X-Request-ID`` when it is a sane token, else a new one), returns it in the response, puts it on
every log line written while the request runs, logs one request line (method, route template, status,
duration; never the client address or user agent) and counts the request by route template, method and status.

``GET /metrics`` serves the API's own series plus the broker and database gauges of ``scrape``: with
METRICS_TOKEN set only to a request bearing it, without it only to loopback callers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from geminivideo.config import get_settings
from geminivideo.telemetry import celery_hooks, logs, tracing
from geminivideo.telemetry.auth import may_read_metrics, metrics_token
from geminivideo.telemetry.metrics import enable_recording, metrics, multiprocess_dir
from geminivideo.telemetry.scrape import ScrapeCollector

access_log = logging.getLogger("geminivideo.access")
REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

router = APIRouter(tags=["telemetry"])
_SCRAPE_REGISTRY: list[CollectorRegistry] = []


def _request_id(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER.encode():
            given = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(given):
                return given
    return uuid.uuid4().hex


def _route(scope: dict[str, Any]) -> str:
    """The matched route's template (``/api/video/jobs/{task_id}``), never the raw path: bounded labels."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


class TelemetryMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        answered = {"status": 500}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = int(message["status"])
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        token = logs.bind(request_id=request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, answered["status"], time.perf_counter() - started)
            logs.unbind(token)

    @staticmethod
    def _record(scope: dict[str, Any], code: int, elapsed_s: float) -> None:
        route, method = _route(scope), str(scope.get("method", ""))
        found = metrics()
        found.http_requests.labels(route, method, str(code)).inc()
        found.http_duration.labels(route, method).observe(elapsed_s)
        access_log.info("%s %s %d %.1f ms", method, route, code, elapsed_s * 1000)


def render_api_metrics() -> bytes:
    """This API's series (every API process when PROMETHEUS_MULTIPROC_DIR is set) and the scrape-time gauges."""
    folder = multiprocess_dir()
    if folder is not None:
        own = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(own, path=str(folder))
    else:
        own = REGISTRY
    if not _SCRAPE_REGISTRY:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(ScrapeCollector())
        _SCRAPE_REGISTRY.append(scrape)
    with tracing.untraced():
        return generate_latest(own) + generate_latest(_SCRAPE_REGISTRY[0])


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    token = metrics_token(get_settings())
    client = request.client.host if request.client else None
    if not may_read_metrics(token, request.headers.get("authorization"), client):
        if token is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "metrics are served to loopback callers only; "
                                "set METRICS_TOKEN to let a scraper on another host read them")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "metrics need 'Authorization: Bearer <METRICS_TOKEN>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return Response(render_api_metrics(), media_type=CONTENT_TYPE_LATEST)


def instrument_api(app: FastAPI) -> None:
    """Everything the API needs, in one call from ``create_app``: logs, metrics, request ids, traces."""
    settings = get_settings()
    logs.configure(settings.log_format)
    folder = multiprocess_dir()  # several uvicorn workers: each writes here, any of them serves the sum
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    enable_recording()
    metrics()  # created now, so the first scrape already lists every series
    celery_hooks.install()  # stamps the messages this API sends
    app.add_middleware(TelemetryMiddleware)
    app.include_router(router)
    if tracing.setup("geminivideo-api", settings):
        tracing.instrument_fastapi(app)
