"""Deadlines: FFmpeg's timeout is what is left of the task's limit."""

from __future__ import annotations

import pytest

from geminivideo.errors import ProcessingFailed
from geminivideo.video.workspace import Deadline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remaining_time_shrinks_and_then_refuses() -> None:
    clock = Clock()
    deadline = Deadline(60, "RENDER_TIMEOUT", clock=clock)
    assert deadline.remaining_s() == 60 and not deadline.expired
    clock.now += 59.5
    assert deadline.remaining_s() == 1.0  # never below a second: FFmpeg needs a moment to start
    clock.now += 1
    assert deadline.expired
    with pytest.raises(ProcessingFailed, match="RENDER_TIMEOUT=60 s reached before FFmpeg could run"):
        deadline.remaining_s()
