"""Templates, static files and the headers every console response carries.

Templates are Jinja2 with autoescaping, loaded from the package (``templates/``); static files (CSS, the
page script and the vendored uPlot build with its licence) are served from ``static/`` by one route,
so the console works offline and needs no CDN.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from geminivideo.api.console.sessions import ConsoleSession, take_flash

# Scripts and styles only from this origin (no inline script), nothing framed, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
NAV = (("approvals", "Approvals"), ("jobs", "Jobs"), ("fleet", "Fleet"), ("webhooks", "Webhooks"))

static_router = APIRouter()


def _ago(value: datetime | None) -> str:
    """'42 s ago', '5 min ago', '3 h ago', '2 d ago' for a timestamp; '—' for none."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - value).total_seconds()
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if abs(seconds) < limit:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} d ago"


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: Any) -> datetime | None:
    """An ISO-8601 string (as snapshots carry) as a datetime; None when it is not one."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def _pct(value: Any, digits: int = 1) -> str:
    try:
        return f"{float(value) * 100:.{digits}f} %"
    except (TypeError, ValueError):
        return "—"


def _bytes(value: Any) -> str:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


@cache
def environment() -> Environment:
    """The console's Jinja2 environment, built on first use (not at import)."""
    env = Environment(loader=PackageLoader("geminivideo.api.console", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                      auto_reload=False)  # packaged templates do not change under a running process
    env.filters.update(ago=_ago, when=_when, money=_money, pct=_pct, bytes=_bytes, iso=_iso)
    return env


def render(request: Request, template: str, session: ConsoleSession | None, *, page: str = "",
           status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the common context (identity, CSRF token, navigation, flash messages)."""
    html = environment().get_template(template).render(
        request=request, session=session, identity=session.identity if session else None,
        csrf=session.csrf if session else "", nav=NAV, page=page,
        messages=take_flash(session) if session else [], **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


@cache
def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/`` by relative path, with its media type (read once per process)."""
    found: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, name + "/")
            else:
                media = mimetypes.guess_type(entry.name)[0] or "text/plain"
                found[name] = (entry.read_bytes(), media)

    walk(resources.files("geminivideo.api.console") / "static", "")
    return found


@static_router.get("/console/static/{path:path}", include_in_schema=False)
def static_file(path: str) -> Response:
    """A packaged static file; only names found in the package are served, so no path escapes it."""
    entry = _static_files().get(path)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no console static file {path!r}")
    body, media = entry
    if media.startswith("text/") or media in ("application/javascript", "text/javascript"):
        media += "; charset=utf-8"
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(body, media_type=media, headers=headers)
