"""Application factory: one router per concern, no settings read or connection opened at import."""

from __future__ import annotations

from fastapi import FastAPI

from geminivideo import __version__
from geminivideo.api import health, jobs, ml, rag, webhooks
from geminivideo.telemetry.http import instrument_api


def create_app() -> FastAPI:
    app = FastAPI(
        title="GeminiVideo Workers API",
        version=__version__,
        description="Webhooks, video jobs, budget sampler, fatigue, approvals and winner search.",
    )
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(jobs.router)
    app.include_router(ml.router)
    app.include_router(rag.router)
    instrument_api(app)  # logs, /metrics, request ids and traces (geminivideo.telemetry)
    return app
