"""Sign-in (an API key for a session cookie), sign-out, and the console's front door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from geminivideo.api.console import sessions
from geminivideo.api.console.identity import identify
from geminivideo.api.console.rendering import SECURITY_HEADERS, render
from geminivideo.api.console.sessions import ConsoleSession, require_session

router = APIRouter()
HOME = "/console/approvals"


def _safe_next(target: str | None) -> str:
    """Only a console path is a valid place to return to (no open redirect to another site)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


@router.get("/console", include_in_schema=False)
@router.get("/console/", include_in_schema=False)
def console_home(session: Annotated[ConsoleSession, Depends(require_session)]) -> Response:
    return _redirect(HOME)


def _sign_in_page(request: Request, next_url: str, error: str = "", status_code: int = 200) -> Response:
    token = sessions.login_token(request)
    response = render(request, "signin.html", None, page="sign-in", status_code=status_code,
                      login_csrf=token, next_url=next_url, error=error)
    sessions.set_login_cookie(request, response, token)
    return response


@router.get("/console/sign-in", include_in_schema=False)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    if sessions.load_session(request) is not None:
        return _redirect(_safe_next(next))
    return _sign_in_page(request, _safe_next(next))


@router.post("/console/sign-in", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    form = await sessions.read_form(request)
    sessions.check_login_csrf(request, form)
    next_url = _safe_next(form.get("next"))
    client = request.client.host if request.client else "unknown"
    if sessions.failed_sign_ins(client) >= sessions.MAX_FAILED_SIGN_INS:
        minutes = sessions.FAILED_SIGN_IN_WINDOW_S // 60
        return _sign_in_page(request, next_url, f"Too many failed sign-ins from this address; try again in "
                             f"{minutes} minutes.", status.HTTP_429_TOO_MANY_REQUESTS)
    identity = await run_in_threadpool(identify, form.get("api_key", ""))
    if identity is None:
        sessions.record_failed_sign_in(client)
        return _sign_in_page(request, next_url, "That API key was not accepted. Check it and try again.",
                             status.HTTP_401_UNAUTHORIZED)
    response = _redirect(next_url)
    sessions.start_session(request, response, identity)
    return response


@router.post("/console/sign-out", include_in_schema=False)
async def sign_out(request: Request, session: Annotated[ConsoleSession, Depends(require_session)]) -> Response:
    sessions.check_csrf(request, session, await sessions.read_form(request))
    response = _redirect("/console/sign-in")
    sessions.end_session(request, response)
    return response
