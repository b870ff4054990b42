"""Operator console: server-rendered pages at ``/console`` for approvals, jobs, the fleet and webhooks.

Jinja2 templates and static files (CSS, a small page script, the vendored uPlot build with its licence) ship
inside the package, so the console works offline; every page needs a signed-in session (an API key
exchanged for a cookie, see ``sessions``). ``router`` is what the application includes.
"""

from __future__ import annotations

from fastapi import APIRouter

from geminivideo.api.console import approvals, fleet, jobs, signin, webhooks
from geminivideo.api.console.rendering import static_router

router = APIRouter(tags=["console"])
for _module_router in (static_router, signin.router, approvals.router, jobs.router, fleet.router, webhooks.router):
    router.include_router(_module_router)

__all__ = ["router"]
