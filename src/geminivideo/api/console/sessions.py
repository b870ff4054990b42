"""Console sessions: an API key exchanged for a random session token kept in Redis, plus CSRF tokens.

The cookie holds only the token (HttpOnly, SameSite=Strict, Secure when the request came over HTTPS);
Redis keeps ``console_session:<sha256(token)>`` with the identity, the CSRF token and a one-shot flash
message, so a Redis reader cannot reuse a session and sign-out really ends it. Every POST carries the
session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``); the sign-in form, which has no
session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import HTTPException, Request, Response, status

from geminivideo.api.console.identity import Identity
from geminivideo.redis_client import get_redis

COOKIE = "gv_console"
LOGIN_COOKIE = "gv_console_login"
SESSION_TTL_S = 8 * 3600
LOGIN_TTL_S = 15 * 60
MAX_FORM_BYTES = 16 * 1024
SIGN_IN_PATH = "/console/sign-in"
MAX_FAILED_SIGN_INS = 10  # per client address and window: guessing keys through the form stays impractical
FAILED_SIGN_IN_WINDOW_S = 300


@dataclass
class ConsoleSession:
    """What the console knows about a signed-in browser."""

    token_hash: str
    identity: Identity
    csrf: str
    flash: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"identity": asdict(self.identity), "csrf": self.csrf, "flash": self.flash})

    @classmethod
    def from_json(cls, token_hash: str, raw: str) -> ConsoleSession:
        data = json.loads(raw)
        ident = data["identity"]
        identity = Identity(name=ident["name"], scopes=tuple(ident["scopes"]), tenant_id=ident.get("tenant_id"))
        return cls(token_hash=token_hash, identity=identity, csrf=data["csrf"], flash=data.get("flash", []))


def _key(token_hash: str) -> str:
    return f"console_session:{token_hash}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True, samesite="strict",
                        secure=_secure(request))


# ─── Session life ─────────────────────────────────────────────────────────────────────────────────
def start_session(request: Request, response: Response, identity: Identity) -> ConsoleSession:
    """Create a session for ``identity`` and set its cookie on ``response``."""
    token = secrets.token_urlsafe(32)
    session = ConsoleSession(token_hash=_hash(token), identity=identity, csrf=secrets.token_urlsafe(32))
    get_redis().setex(_key(session.token_hash), SESSION_TTL_S, session.to_json())
    _set_cookie(response, request, COOKIE, token, SESSION_TTL_S)
    response.delete_cookie(LOGIN_COOKIE, path="/console", httponly=True, samesite="strict", secure=_secure(request))
    return session


def end_session(request: Request, response: Response) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        get_redis().delete(_key(_hash(token)))
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=_secure(request))


def load_session(request: Request) -> ConsoleSession | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    token_hash = _hash(token)
    raw = get_redis().get(_key(token_hash))
    return ConsoleSession.from_json(token_hash, str(raw)) if raw else None


def save_session(session: ConsoleSession) -> None:
    """Write back the flash messages, keeping the session's remaining lifetime."""
    client = get_redis()
    ttl = int(client.ttl(_key(session.token_hash)) or 0)
    if ttl > 0:
        client.setex(_key(session.token_hash), ttl, session.to_json())


def flash(session: ConsoleSession, kind: str, text: str) -> None:
    """Queue a message for the next page this session sees (kind: ok or error)."""
    session.flash.append({"kind": kind, "text": text})
    save_session(session)


def take_flash(session: ConsoleSession) -> list[dict[str, str]]:
    messages, session.flash = session.flash, []
    if messages:
        save_session(session)
    return messages


def failed_sign_ins(client: str) -> int:
    """Failed sign-ins from ``client`` in the current window (shared by every API process through Redis)."""
    return int(get_redis().get(f"console_signin_failures:{client}") or 0)


def record_failed_sign_in(client: str) -> None:
    key = f"console_signin_failures:{client}"
    with get_redis().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, FAILED_SIGN_IN_WINDOW_S, nx=True)
        pipe.execute()


def require_session(request: Request) -> ConsoleSession:
    """Dependency of every console page: the session, or a 303 to the sign-in page (back here afterwards)."""
    session = load_session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"{SIGN_IN_PATH}?next={quote(target, safe='')}"
        raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first", headers={"Location": location})
    return session


# ─── Forms and CSRF ───────────────────────────────────────────────────────────────────────────────
async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body as a dict (first value per field); oversized or other bodies are refused."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"expected an application/x-www-form-urlencoded form, got {content_type or 'none'}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"form larger than {MAX_FORM_BYTES} bytes")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def check_csrf(request: Request, session: ConsoleSession, form: dict[str, Any] | None = None) -> None:
    """Refuse (403) a POST whose CSRF token (form field or header) is not this session's."""
    sent = (form or {}).get("csrf") or request.headers.get("x-csrf-token")
    if not _same(sent, session.csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page and try again")


def login_token(request: Request) -> str:
    """The double-submit token of the sign-in form (reused while its cookie lives)."""
    existing = request.cookies.get(LOGIN_COOKIE)
    return existing if existing and len(existing) <= 128 else secrets.token_urlsafe(32)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    _set_cookie(response, request, LOGIN_COOKIE, token, LOGIN_TTL_S)


def check_login_csrf(request: Request, form: dict[str, str]) -> None:
    if not _same(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "sign-in form expired or not from this site: reload the sign-in page and try again")
