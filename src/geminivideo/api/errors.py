"""The error tree of ``geminivideo.errors`` mapped to HTTP status codes, registered once on the app.

Routers raise domain errors and let them travel; this module decides the answer: a name that does not
exist is a 404, a state that forbids the request a 409, an invalid value a 422, and a dependency that did
not answer (Redis, the database, a model that cannot be loaded) a 503 the caller may retry. The one
deliberate exception lives in ``api/webhooks.py``: HubSpot's endpoint answers 400 to an invalid body, its
documented answer, because HubSpot reads a 5xx as "stored nothing, send it again" and a 400 as "this body
will never be accepted".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from geminivideo.errors import (
    Conflict,
    InvalidPayload,
    ModelUnavailable,
    NotFound,
    ProcessingFailed,
    TransientError,
)

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


def _answer(status_code: int, detail: str) -> JSONResponse:
    # The same body FastAPI gives an HTTPException, so clients read every error the same way.
    return JSONResponse({"detail": detail}, status_code=status_code)


def _with_status(status_code: int) -> Handler:
    def handle(_request: Request, exc: Exception) -> Response:
        return _answer(status_code, str(exc))

    return handle


def _dependency_unavailable(_request: Request, exc: Exception) -> Response:
    return _answer(status.HTTP_503_SERVICE_UNAVAILABLE, f"dependency unavailable: {exc}")


def _database_unavailable(_request: Request, exc: Exception) -> Response:
    # The first line only: SQLAlchemy appends the statement and its parameters on the lines after it.
    lines = str(exc).splitlines()
    detail = f"database unavailable: {type(exc).__name__}: {lines[0] if lines else ''}"
    return _answer(status.HTTP_503_SERVICE_UNAVAILABLE, detail)


# Starlette picks the handler of the nearest class in the exception's MRO, so NotFound (an
# InvalidPayload) answers 404 although InvalidPayload answers 422.
HANDLERS: dict[type[Exception], Handler] = {
    NotFound: _with_status(status.HTTP_404_NOT_FOUND),
    Conflict: _with_status(status.HTTP_409_CONFLICT),
    InvalidPayload: _with_status(status.HTTP_422_UNPROCESSABLE_CONTENT),
    ModelUnavailable: _with_status(status.HTTP_503_SERVICE_UNAVAILABLE),
    ProcessingFailed: _with_status(status.HTTP_503_SERVICE_UNAVAILABLE),
    TransientError: _dependency_unavailable,
    redis.RedisError: _dependency_unavailable,
    SQLAlchemyError: _database_unavailable,
}


def register_error_handlers(app: FastAPI) -> None:
    """Install :data:`HANDLERS` on ``app``."""
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
