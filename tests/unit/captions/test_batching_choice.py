"""When captions use batched Whisper: CAPTION_BATCHING, CAPTION_BATCH_MIN_S and the device decide."""

from __future__ import annotations

from pathlib import Path

import pytest

from geminivideo.video.captions import use_batched
from geminivideo.video.whisper_models import LoadedModel, ResolvedModel
from tests.support.env import applied


def _loaded(device: str) -> LoadedModel:
    resolved = ResolvedModel(name="base", path=Path("/m"), source="test")
    return LoadedModel(resolved=resolved, model=None, device=device, compute_type="int8", load_s=0.0)


@pytest.mark.parametrize(("mode", "device", "seconds", "expected"), [
    ("auto", "cpu", 600, False),  # slower than sequential on a small CPU host (bench/captions.py)
    ("auto", "cuda", 600, True),
    ("auto", "cuda", 30, False),  # under CAPTION_BATCH_MIN_S
    ("on", "cpu", 600, True),
    ("on", "cpu", 30, False),
    ("off", "cuda", 600, False),
])
def test_batching_choice(mode: str, device: str, seconds: float, expected: bool) -> None:
    with applied({"CAPTION_BATCHING": mode, "CAPTION_BATCH_MIN_S": "60"}):
        assert use_batched(_loaded(device), seconds) is expected
