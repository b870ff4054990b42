"""generate_preview_task on a real worker: frame count, spacing, aspect, formats, sprite and WebVTT track."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.video.tasks import generate_preview_task
from tests.integration.video.conftest import Clips
from tests.integration.video.support import assert_progress_protocol, partial_files, run
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.usefixtures("video_worker")

CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")
XYWH = re.compile(r"^(?P<file>[^#\s]+)#xywh=(\d+),(\d+),(\d+),(\d+)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_thumbnail_vtt(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """Cues of a WebVTT thumbnail track; asserts the structure a web player relies on."""
    blocks = text.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        timing, target = block.split("\n")
        times, place = CUE.match(timing), XYWH.match(target)
        assert times and place, block
        x, y, w, h = (int(v) for v in place.groups()[1:])
        cues.append((_seconds(*times.groups()[:4]), _seconds(*times.groups()[4:]), place["file"], (x, y, w, h)))
    return cues


def test_frames_and_sprite_with_a_thumbnail_track(clips: Clips, redis_client: redis.Redis,
                                                  test_env: HarnessEnv) -> None:
    outcome = run(redis_client, generate_preview_task, str(clips.landscape), 6, sprite=True)
    assert outcome.error is None, outcome.error
    result = outcome.value
    folder = Path(result["preview_dir"])
    assert folder.parent == test_env.preview_dir
    assert result["num_frames"] == 6 and len(result["preview_paths"]) == 6
    assert result["video_duration"] == pytest.approx(2.0, abs=0.05)

    # Evenly spaced: the middle of six equal slices.
    step = result["video_duration"] / 6
    assert result["frame_times"] == pytest.approx([step * (i + 0.5) for i in range(6)], abs=0.002)
    pixels = set()
    for path in map(Path, result["preview_paths"]):
        probed = media.ffprobe(path)
        assert probed.size == (320, 240) and probed.video["codec_name"] == "mjpeg"
        pixels.add(media.frame_rgb(path, 0)[2])
    assert len(pixels) == 6  # six different moments of the moving test pattern

    # Sprite: 3x2 tiles of 320x240; the VTT covers the whole video, one cue per tile, inside the sprite.
    sprite = media.ffprobe(Path(result["sprite_path"]))
    assert sprite.size == (3 * 320, 2 * 240)
    cues = parse_thumbnail_vtt(Path(result["vtt_path"]).read_text())
    assert len(cues) == 6
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(result["video_duration"], abs=0.002)
    for (_start, end, _file, _box), (next_start, *_rest) in itertools.pairwise(cues):
        assert end == next_start
    for start, end, file, (x, y, w, h) in cues:
        assert end > start and file == "sprite.jpg"
        assert (w, h) == (320, 240) and x + w <= sprite.size[0] and y + h <= sprite.size[1]
    assert {(x, y) for *_, (x, y, _w, _h) in cues} == {(c * 320, r * 240) for r in range(2) for c in range(3)}

    assert_progress_protocol(outcome.events, TaskStatus.COMPLETED)
    assert partial_files(test_env.preview_dir) == []


def test_portrait_video_gives_portrait_webp_thumbnails(clips: Clips, redis_client: redis.Redis) -> None:
    outcome = run(redis_client, generate_preview_task, str(clips.portrait), 3, width=144, format="webp")
    assert outcome.error is None, outcome.error
    for path in map(Path, outcome.value["preview_paths"]):
        assert path.suffix == ".webp"
        probed = media.ffprobe(path)
        width, height = probed.size
        assert probed.video["codec_name"] == "webp"
        assert width == 144 and height == pytest.approx(144 * 16 / 9, abs=2)  # 9:16 kept
    assert outcome.value["sprite_path"] is None and outcome.value["vtt_path"] is None
