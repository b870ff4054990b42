"""Given RENDER_DIR on a 2 MiB tmpfs, when a render needs more than that (lossless output), then it fails at once
with OutOfSpace naming the problem (a permanent error: not retried), leaves no partial file and frees the space,
and the same worker goes on to finish a small render into the same folder.
"""

from __future__ import annotations

import os

import pytest

from geminivideo.contracts import TaskStatus
from tests.reliability.conftest import MakeDeployment
from tests.support import faults
from tests.support.media import ffprobe, make_video

pytestmark = [pytest.mark.reliability]


def _render_job(clip: str, *, crf: int, name: str) -> dict:
    return {"scenes": [{"video_path": clip}], "transitions": False, "normalize_audio": False, "output_name": name,
            "output_format": {"width": 480, "height": 270, "fps": 25, "crf": crf, "preset": "ultrafast"}}


def test_full_render_dir_fails_cleanly_and_the_worker_carries_on(deployment: MakeDeployment) -> None:
    dep = deployment(RENDER_TIMEOUT="60")
    with faults.small_tmpfs(dep.render_dir, size="2m") as render_dir:
        clip = str(make_video(dep.media_dir / "clip.mp4", duration_s=6, size=(480, 270)))
        worker = dep.worker("video", ["render_queue"], name="diskfull")
        big = dep.send("video", "render_video_task", [_render_job(clip, crf=0, name="too-big.mp4")])
        with pytest.raises(Exception) as caught:
            big.get(timeout=120)
        assert type(caught.value).__name__ == "OutOfSpace", caught.value
        assert "no space left" in str(caught.value).lower()
        assert big.state == "FAILURE" and dep.status(big.id) is TaskStatus.FAILED
        assert os.listdir(render_dir) == [], "a partial or truncated output stayed on the full disk"
        stats = os.statvfs(render_dir)
        assert stats.f_bfree == stats.f_blocks, "the failed render's space was not given back"

        small = dep.send("video", "render_video_task", [_render_job(clip, crf=45, name="fits.mp4")])
        result = small.get(timeout=120)
        assert result["output_path"] == str(render_dir / "fits.mp4")
        assert ffprobe(render_dir / "fits.mp4").duration == pytest.approx(6, abs=0.2)
        assert worker.alive() and sorted(os.listdir(render_dir)) == ["fits.mp4"]
        print("disk full: render failed with OutOfSpace, no partial file, next render on the same worker succeeded")
        worker.stop(timeout_s=15)  # before the unmount: nothing may hold the tmpfs
