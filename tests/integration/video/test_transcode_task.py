"""transcode_task on a real worker: each codec in a container that takes it, audio fitted to the container,
rate control and presets accepted by the encoder, scaling that keeps the aspect ratio; checked with ffprobe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.video.tasks import transcode_task
from tests.integration.video.conftest import Clips
from tests.integration.video.support import assert_progress_protocol, partial_files, run
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.usefixtures("video_worker")

# (output_format, expected ffprobe codec, container format name, audio codec, size) for the 320x240 input.
MATRIX: list[tuple[dict[str, Any], str, str, str, tuple[int, int]]] = [
    ({"codec": "h264", "container": "mp4", "bitrate": "400k", "preset": "ultrafast"}, "h264", "mov,mp4", "aac",
     (320, 240)),
    ({"codec": "h265", "container": "mkv", "crf": 32, "preset": "ultrafast", "width": 160}, "hevc", "matroska",
     "aac", (160, 120)),
    ({"codec": "vp9", "container": "webm", "preset": "ultrafast", "height": 120}, "vp9", "webm", "opus",
     (160, 120)),
    ({"codec": "av1", "container": "mp4", "preset": "12", "width": 200, "height": 200}, "av1", "mov,mp4", "aac",
     (200, 150)),
]


@pytest.mark.parametrize(("fmt", "codec", "container", "audio", "size"), MATRIX,
                         ids=[f"{m[0]['codec']}-{m[0]['container']}" for m in MATRIX])
def test_codec_container_matrix(fmt: dict[str, Any], codec: str, container: str, audio: str,
                                size: tuple[int, int], clips: Clips, redis_client: redis.Redis,
                                test_env: HarnessEnv) -> None:
    outcome = run(redis_client, transcode_task, str(clips.landscape), fmt)
    assert outcome.error is None, outcome.error
    result = outcome.value
    output = Path(result["output_path"])
    assert output.parent == test_env.render_dir and output.suffix == f".{fmt['container']}"
    probed = media.ffprobe(output)
    assert container in probed.format_name
    assert probed.video["codec_name"] == codec and probed.size == size
    assert probed.audio is not None and probed.audio["codec_name"] == audio
    assert probed.duration == pytest.approx(2.0, abs=0.1)
    assert (result["codec"], result["container"], result["width"], result["height"]) == (
        fmt["codec"], fmt["container"], *size)
    assert result["input_path"] == str(clips.landscape) and result["file_size"] == output.stat().st_size
    if fmt["codec"] == "av1":
        assert result["encoder"] == "libsvtav1"
    assert_progress_protocol(outcome.events, TaskStatus.COMPLETED)
    assert partial_files(test_env.render_dir) == []


def test_portrait_without_audio_keeps_aspect_and_has_no_audio(clips: Clips, redis_client: redis.Redis) -> None:
    outcome = run(redis_client, transcode_task, str(clips.portrait),
                  {"codec": "vp9", "container": "mkv", "preset": "ultrafast", "width": 90})
    assert outcome.error is None, outcome.error
    probed = media.ffprobe(Path(outcome.value["output_path"]))
    assert probed.size == (90, 160) and probed.video["pix_fmt"] == "yuv420p"  # 4:4:4 input, 4:2:0 out
    assert probed.audio is None
