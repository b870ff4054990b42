"""Every domain error reaches HTTP through the one map in ``api/errors.py``, with the status its class promises."""

from __future__ import annotations

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from geminivideo.api.app import create_app
from geminivideo.api.errors import HANDLERS, register_error_handlers
from geminivideo.client import JobAlreadyFinished, UnknownJob
from geminivideo.errors import (
    DependencyUnavailable,
    InvalidPayload,
    MediaUnreadable,
    ModelUnavailable,
    ProcessingFailed,
)
from geminivideo.ml.decisions.approvals import ChangeNotFound, InvalidTransition
from geminivideo.ml.winners.service import UnknownAd

CASES: list[tuple[Exception, int, str]] = [
    (UnknownJob("no job with id 'x'"), 404, "no job with id 'x'"),
    (UnknownAd("ad_id 'a': no such ad"), 404, "no such ad"),
    (ChangeNotFound("no pending ad change with id 7"), 404, "id 7"),
    (JobAlreadyFinished("job j already completed"), 409, "already completed"),
    (InvalidTransition("change 7 is approved"), 409, "is approved"),
    (InvalidPayload("k must be between 1 and 100, got 0"), 422, "got 0"),
    (ModelUnavailable("MiniLM is not installed"), 503, "MiniLM"),
    (ProcessingFailed("index unreadable"), 503, "index unreadable"),
    (DependencyUnavailable("redis down"), 503, "dependency unavailable: redis down"),
    (redis.ConnectionError("refused"), 503, "dependency unavailable: refused"),
    (OperationalError("SELECT 1", {}, Exception("no route\nmore")), 503, "database unavailable: OperationalError"),
]


def _client_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    register_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("exc", "status_code", "detail"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_each_error_class_answers_its_status_with_the_message(exc: Exception, status_code: int, detail: str) -> None:
    reply = _client_raising(exc).get("/boom")
    assert reply.status_code == status_code, reply.text
    assert detail in reply.json()["detail"]


def test_an_error_outside_the_map_is_a_plain_500() -> None:
    # MediaUnreadable is a PermanentError but not a request error: the API never raises it on purpose.
    assert _client_raising(MediaUnreadable("truncated")).get("/boom").status_code == 500


def test_the_application_installs_the_map() -> None:
    installed = create_app().exception_handlers
    assert all(installed.get(exc_class) is handler for exc_class, handler in HANDLERS.items())
