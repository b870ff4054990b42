"""Abuse limits of the API: request body size on every route, token buckets per key on job submission and
the ML endpoints (Redis, shared by every API process), open progress streams per key and in total, and a
single-flight worker inspection so parallel ``/api/workers`` calls cannot hold the thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import redis
from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geminivideo.api.auth import AnyKey, Principal
from geminivideo.config import get_settings
from geminivideo.redis_client import get_redis
from geminivideo.security.ratelimit import Limit, take

log = logging.getLogger(__name__)
T = TypeVar("T")


# ─── Request bodies ─────────────────────────────────────────────────────────────────────────────────
class BodySizeLimit:
    """ASGI middleware: a body over ``MAX_REQUEST_BODY_BYTES`` is a 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_request_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, capped_receive, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body exceeds {limit} bytes (MAX_REQUEST_BODY_BYTES)"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ─── Token buckets ──────────────────────────────────────────────────────────────────────────────────
def _limit(bucket: str) -> Limit:
    settings = get_settings()
    if bucket == "jobs":
        return Limit(settings.rate_limit_jobs_per_minute, settings.rate_limit_jobs_burst)
    return Limit(settings.rate_limit_ml_per_minute, settings.rate_limit_ml_burst)


def rate_limit(bucket: str) -> Any:
    """Route dependency: one token from the caller's ``bucket`` ("jobs" or "ml"), else 429 with Retry-After.

    Redis unreachable: the request goes on (logged); the job submission itself will answer 503 then.
    """

    async def _take(principal: AnyKey) -> None:
        try:
            decision = await run_in_threadpool(take, get_redis(), f"{bucket}:{principal.name}", _limit(bucket))
        except redis.RedisError as exc:
            log.warning("rate limit not checked (Redis: %s)", type(exc).__name__)
            return
        if not decision.allowed:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"rate limit for {bucket} requests of key {principal.name!r}; retry later",
                                {"Retry-After": str(decision.retry_after_s)})

    return Depends(_take)


RATE_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests for this key; ``Retry-After`` says when to try again"},
}


# ─── Progress streams ───────────────────────────────────────────────────────────────────────────────
class StreamSlots:
    """Open event streams in this API process, per key and in total (each stream holds a Redis subscription)."""

    def __init__(self) -> None:
        self.per_key: Counter[str] = Counter()

    def acquire(self, principal: Principal) -> None:
        settings = get_settings()
        if sum(self.per_key.values()) >= settings.sse_max_streams:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many open event streams on this server",
                                {"Retry-After": "5"})
        if self.per_key[principal.name] >= settings.sse_max_streams_per_key:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"key {principal.name!r} already has {settings.sse_max_streams_per_key} open "
                                "event streams (SSE_MAX_STREAMS_PER_KEY); close one first", {"Retry-After": "5"})
        self.per_key[principal.name] += 1

    def release(self, principal: Principal) -> None:
        self.per_key[principal.name] -= 1
        if self.per_key[principal.name] <= 0:
            del self.per_key[principal.name]


def _slots(request: Request) -> StreamSlots:
    slots = getattr(request.app.state, "stream_slots", None)
    if slots is None:
        slots = request.app.state.stream_slots = StreamSlots()
    return slots


async def stream_slot(request: Request, principal: AnyKey) -> AsyncIterator[None]:
    """Dependency held for the whole stream: the slot is released when the response ends or the client leaves."""
    slots = _slots(request)
    slots.acquire(principal)
    try:
        yield
    finally:
        slots.release(principal)


StreamSlot = Annotated[None, Depends(stream_slot)]


# ─── Worker inspection ──────────────────────────────────────────────────────────────────────────────
class SingleFlight:
    """At most one blocking call in flight, on its own thread; concurrent callers share its result, and a
    result stays fresh for ``fresh_s``. So 100 parallel ``/api/workers`` calls cost one broadcast and one
    thread, not 100 threads of FastAPI's pool (which webhook ingest and every sync route need)."""

    def __init__(self, fresh_s: float) -> None:
        self.fresh_s = fresh_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="single-flight")
        self._running: asyncio.Future[Any] | None = None
        self._value: tuple[float, Any] | None = None

    async def get(self, call: Callable[[], T]) -> T:
        if self._value is not None and time.monotonic() - self._value[0] < self.fresh_s:
            return self._value[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._refresh(call))
        return await asyncio.shield(self._running)

    async def _refresh(self, call: Callable[[], T]) -> T:
        value = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        self._value = (time.monotonic(), value)
        return value


def single_flight(request: Request, name: str, fresh_s: float) -> SingleFlight:
    """The app's single-flight runner called ``name`` (one per app, so per event loop)."""
    flights: dict[str, SingleFlight] | None = getattr(request.app.state, "single_flights", None)
    if flights is None:
        flights = request.app.state.single_flights = {}
    if name not in flights:
        flights[name] = SingleFlight(fresh_s)
    return flights[name]
