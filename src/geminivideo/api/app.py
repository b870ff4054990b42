"""Application factory: one router per concern, no settings read or connection opened at import."""

from __future__ import annotations

from fastapi import FastAPI

from geminivideo import __version__
from geminivideo.api import health, jobs, ml, rag, webhooks
from geminivideo.api.console import router as console_router


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
    app.include_router(console_router)
    return app
