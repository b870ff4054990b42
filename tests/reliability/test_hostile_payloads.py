"""Hostile task payloads: random and malformed input gives a validation error naming the field, or a permanent
task failure, never a crash, a retry loop or a stuck task.

- Every payload model of contracts.py, fed generated JSON shaped like it (its own field names and aliases with
  values of any JSON type, plus unknown keys): ``parse_payload`` returns the model or raises InvalidPayload
  naming a field, nothing else.
- The video and webhook tasks on real workers, sent generated malformed arguments: each ends FAILURE at once
  with a refusal of its payload (never RETRY, never left running, never a TypeError from inside the task), and
  the workers keep serving.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from geminivideo import contracts
from geminivideo.contracts import Payload, TaskStatus, parse_payload
from geminivideo.errors import InputNotAllowed, InvalidPayload
from tests.reliability.conftest import Deployment, build_deployment, sqlite_database
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*

pytestmark = [pytest.mark.reliability]

MODELS = sorted(
    (obj for obj in vars(contracts).values()
     if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__.startswith(f"{contracts.__name__}.")
     and (issubclass(obj, Payload) or obj is contracts.HubSpotEvent) and obj is not Payload),
    key=lambda m: m.__name__,
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=3) |
                           st.dictionaries(st.text(max_size=10), children, max_size=3), max_leaves=12)


def field_names(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(name)
        if info.alias:
            names.append(info.alias)
    return names


def shaped_like(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(field_names(model)) | st.text(max_size=12)
    return st.dictionaries(keys, json_values, max_size=8) | json_values


def test_every_payload_model_is_covered() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"RenderJob", "PreviewJob", "TranscodeJob", "CaptionJob", "CleanupJob", "DealStageChange", "HubSpotEvent",
            "TrackClick", "SamplerFeedback", "PipelineConfig", "IndexWinnerJob", "FatigueScanJob"} <= names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_generated_input_is_a_model_or_an_invalid_payload_naming_a_field(model: type[BaseModel]) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=shaped_like(model))
    def check(data: Any) -> None:
        try:
            parsed = parse_payload(model, data)
        except InvalidPayload as exc:
            message = str(exc)
            assert message.startswith(f"invalid {model.__name__}: ")
            # Each problem is "where: what"; "where" is a field path or "payload" for a wrong top-level type.
            problems = message.split(": ", 1)[1].split("; ")
            assert all(": " in p and p.split(": ", 1)[0] for p in problems), message
        else:
            assert isinstance(parsed, model)

    check()


# ─── the same on real workers ────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def workers(test_env: HarnessEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("payload-fuzz")
    dep = build_deployment(test_env, root, DATABASE_URL=sqlite_database(root), WHISPER_ALLOW_DOWNLOAD="false")
    try:
        dep.worker("video", ["render_queue", "preview_queue", "transcode_queue", "caption_queue"], name="fuzz-video")
        dep.worker("ml", ["hubspot-webhook-events"], name="fuzz-ml")
        yield dep
    finally:
        dep.close()


def _arguments(task: str) -> st.SearchStrategy[tuple[list[Any], dict[str, Any]]]:
    loose_dict = st.dictionaries(st.text(max_size=10), json_values, max_size=4)
    if task == "render_video_task":
        return st.tuples(st.lists(shaped_like(contracts.RenderJob), min_size=1, max_size=1), st.just({}))
    if task == "process_hubspot_webhook":
        return st.tuples(st.lists(shaped_like(contracts.DealStageChange), min_size=1, max_size=1), st.just({}))
    if task == "process_hubspot_events":  # a batch: a list of changes, or anything else in its place
        batch = st.lists(shaped_like(contracts.DealStageChange) | json_values, max_size=3)
        return st.tuples(st.lists(batch | json_values, min_size=1, max_size=2), st.just({}))
    path = st.text(max_size=40) | st.sampled_from(["/etc/passwd", "../../etc/shadow", "", "\x00", "/dev/zero"])
    return st.tuples(st.lists(path | json_values, min_size=1, max_size=2), loose_dict)


def _with_subclasses(cls: type[Exception]) -> set[str]:
    return {cls.__name__}.union(*(_with_subclasses(sub) for sub in cls.__subclasses__()))


# Refusals of the payload before any work: a field that fails validation (InvalidPayload, and arguments that do
# not fit the task's signature, which GeminiTask reports as one) or a path outside MEDIA_ROOTS. A TypeError or
# any other error raised while working on the input is a bug the fuzzing found, not a refusal.
REFUSALS = _with_subclasses(InvalidPayload) | {InputNotAllowed.__name__}


@pytest.mark.parametrize("task", ["render_video_task", "transcode_task", "generate_preview_task", "caption_task",
                                  "process_hubspot_webhook", "process_hubspot_events"])
def test_malformed_task_arguments_fail_permanently_at_once(workers: Deployment, task: str) -> None:
    app = "ml" if task.startswith("process_hubspot") else "video"

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(call=_arguments(task))
    def check(call: tuple[list[Any], dict[str, Any]]) -> None:
        args, kwargs = call
        started = time.monotonic()
        result = workers.send(app, task, args, kwargs)
        try:
            result.get(timeout=30, propagate=False)
        finally:
            elapsed = time.monotonic() - started
        if result.state == "SUCCESS":  # generated input that happens to be valid (a webhook with any stage)
            return
        assert result.state == "FAILURE", f"{task}{tuple(args)} ended {result.state}"
        assert type(result.result).__name__ in REFUSALS, f"{task}: {type(result.result).__name__}: {result.result}"
        assert elapsed < 30
        if app == "video":  # the webhook tasks keep their outcome on the event row, not in task_status
            assert workers.status(result.id) is TaskStatus.FAILED

    check()
    assert all(p.alive() for p in workers.started)
