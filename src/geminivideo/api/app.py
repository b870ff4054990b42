"""Application factory: one router per concern, no settings read or connection opened at import."""

from __future__ import annotations

from fastapi import FastAPI

from geminivideo import __version__
from geminivideo.api import auth, health, jobs, limits, metrics, ml, rag, webhooks
from geminivideo.api.console import router as console_router
from geminivideo.api.errors import register_error_handlers
from geminivideo.telemetry.http import instrument_api


def create_app() -> FastAPI:
    app = FastAPI(
        title="GeminiVideo Workers API",
        version=__version__,
        description="Webhooks, video jobs, budget sampler, fatigue, approvals and winner search.",
    )
    register_error_handlers(app)
    app.include_router(auth.router)  # its lifespan refuses to start without a usable key
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(jobs.router)
    app.include_router(ml.router)
    app.include_router(metrics.router)
    app.include_router(rag.router)
    app.include_router(console_router)
    app.add_middleware(limits.BodySizeLimit)  # MAX_REQUEST_BODY_BYTES on every route
    auth.document_security(app)
    instrument_api(app)  # logs, /metrics, request ids and traces (geminivideo.telemetry)
    return app
