"""When captions use batched Whisper: CAPTION_BATCHING and CAPTION_BATCH_MIN_S decide."""

from __future__ import annotations

import pytest

from geminivideo.video.captions.pipeline import use_batched
from tests.support.env import applied


@pytest.mark.parametrize(("enabled", "seconds", "expected"), [
    ("true", 600, True),
    ("true", 60, True),
    ("true", 59.9, False),  # under CAPTION_BATCH_MIN_S: one or two VAD chunks, nothing to batch
    ("false", 600, False),
])
def test_batching_choice(enabled: str, seconds: float, expected: bool) -> None:
    with applied({"CAPTION_BATCHING": enabled, "CAPTION_BATCH_MIN_S": "60"}):
        assert use_batched(seconds) is expected
