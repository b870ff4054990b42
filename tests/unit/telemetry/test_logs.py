"""Log lines: JSON fields from the task/request context, and nothing personal or secret in any line."""

from __future__ import annotations

import io
import json
import logging

from geminivideo.telemetry import logs


def emit(message: str, *args: object, log_format: str = "json") -> str:
    stream = io.StringIO()
    handler = logs.handler(log_format)
    handler.stream = stream  # type: ignore[attr-defined]
    logger = logging.getLogger(f"test.telemetry.{log_format}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    logger.info(message, *args)
    return stream.getvalue()


def test_json_lines_carry_the_task_context_and_drop_it_after() -> None:
    with logs.log_context(task_id="t-1", task_name="transcode_task", job_id="t-1", attempt=2, tenant="acme"):
        line = json.loads(emit("encoding %s", "clip.mp4"))
    assert line["message"] == "encoding clip.mp4" and line["level"] == "info"
    assert {k: line[k] for k in ("task_id", "task_name", "job_id", "attempt", "tenant")} == {
        "task_id": "t-1", "task_name": "transcode_task", "job_id": "t-1", "attempt": 2, "tenant": "acme"}
    assert "task_id" not in json.loads(emit("outside"))


def test_request_id_binding_is_undone_by_its_token() -> None:
    token = logs.bind(request_id="r-9")
    assert json.loads(emit("inside"))["request_id"] == "r-9"
    logs.unbind(token)
    assert "request_id" not in json.loads(emit("after"))


def test_addresses_credentials_and_tokens_are_masked_in_both_formats() -> None:
    for log_format in ("json", "text"):
        out = emit("client %s via redis://user:s3cret@10.1.2.3:6379/0 with Bearer abcdefghijklmnop, v6 %s",
                   "203.0.113.9", "2001:db8::1:2", log_format=log_format)
        for leaked in ("203.0.113.9", "s3cret", "10.1.2.3", "abcdefghijklmnop", "2001:db8::1:2"):
            assert leaked not in out, (log_format, out)
        assert "[ip]" in out and "[credentials]" in out


def test_loopback_stays_readable() -> None:
    assert logs.scrub("listening on 127.0.0.1:8003 and ::1") == "listening on 127.0.0.1:8003 and ::1"
    assert logs.scrub("version 1.2.3 took 0.5 s at 12:30:45") == "version 1.2.3 took 0.5 s at 12:30:45"
