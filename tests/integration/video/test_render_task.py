"""render_video_task on a real worker, real Redis and real FFmpeg; outputs checked with ffprobe.

Given generated scenes that differ in size, aspect, frame rate, pixel format, container and audio
presence, when they are rendered through the session's video worker, then the output has the asked
size, rate and codecs, an audio track throughout, the exact length (sum of scenes − overlaps, to the
frame), the overlays and subtitles where and when asked, loudness near −16 LUFS, and progress was
published per the protocol. Nothing is left in TEMP_DIR and no partial file in RENDER_DIR.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.video.render import gpu
from geminivideo.video.tasks import render_video_task
from tests.integration.video.conftest import Clips
from tests.integration.video.support import (
    assert_progress_protocol,
    entries,
    partial_files,
    run,
    stored_status,
)
from tests.support import media
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.usefixtures("video_worker")


def _frames_close(seconds: float, expected: float, fps: float) -> bool:
    return abs(seconds - expected) <= 1 / fps + 1e-3


def test_seed_example_renders_with_gpu_fallback_and_progress(clips: Clips, redis_client: redis.Redis,
                                                             test_env: HarnessEnv) -> None:
    temp_before = entries(test_env.temp_dir)
    job = {
        "scenes": [{"video_path": str(clips.landscape)}, {"video_path": str(clips.portrait)},
                   {"video_path": str(clips.webm)}],
        "output_format": {"width": 320, "height": 240, "fps": 30},  # the seed's 1920x1080, at test size
        "use_gpu": True,
    }
    outcome = run(redis_client, render_video_task, job)
    assert outcome.error is None, outcome.error
    result = outcome.value

    # The default fade is 0.5 s at each of the two cuts; scene lengths come from the files.
    landscape, portrait, webm = (media.ffprobe(c) for c in (clips.landscape, clips.portrait, clips.webm))
    expected = landscape.duration + portrait.duration + webm.duration - 2 * 0.5
    probed = media.ffprobe(Path(result["output_path"]), count_frames=True)
    assert probed.size == (320, 240) and probed.fps == 30
    assert probed.video["codec_name"] == "h264" and probed.video["pix_fmt"] == "yuv420p"
    assert probed.audio is not None and probed.audio["codec_name"] == "aac"  # silence fills the silent scene
    assert _frames_close(probed.video_duration, expected, 30), (probed.video_duration, expected)
    assert probed.frame_count == round(probed.video_duration * 30)
    assert result["duration"] == pytest.approx(probed.duration, abs=0.01)
    assert (result["width"], result["height"], result["fps"], result["codec"]) == (320, 240, 30, "h264")
    assert result["file_size"] == Path(result["output_path"]).stat().st_size

    # NVENC where this host has a working NVIDIA encoder, otherwise x264 and the reason; asked here independently.
    if gpu.choose_encoder("h264", "libx264", use_gpu=True).used_gpu:
        assert result["used_gpu"] is True and result["encoder"] == "h264_nvenc" and result["gpu_id"] is not None
        assert not result["gpu_fallback_reason"]
    else:
        assert result["used_gpu"] is False and result["gpu_id"] is None and result["encoder"] == "libx264"
        assert "h264_nvenc" in result["gpu_fallback_reason"]

    assert_progress_protocol(outcome.events, TaskStatus.COMPLETED)
    assert stored_status(redis_client, outcome.result.id).status is TaskStatus.COMPLETED
    assert entries(test_env.temp_dir) == temp_before
    assert partial_files(test_env.render_dir) == []


def test_trims_transitions_h265_and_loudness(clips: Clips, redis_client: redis.Redis) -> None:
    job = {
        "scenes": [
            {"video_path": str(clips.loud), "start_time": 0.5, "end_time": 2.5},  # 2.0 s
            {"video_path": str(clips.landscape), "end_time": 1.2},  # 1.2 s
            {"video_path": str(clips.webm), "start_time": 1.0},  # 2.0 s of a 3 s file
        ],
        "output_format": {"width": 256, "height": 144, "fps": 25, "codec": "h265", "crf": 30,
                          "preset": "ultrafast"},
        "transitions": [{"type": "wipeleft", "duration": 0.4}, {"type": "dissolve", "duration": 0.6}],
        "output_name": "trimmed-h265.mp4",
    }
    outcome = run(redis_client, render_video_task, job)
    assert outcome.error is None, outcome.error
    output = Path(outcome.value["output_path"])
    assert output.name == "trimmed-h265.mp4"
    webm_rest = media.ffprobe(clips.webm).duration - 1.0
    expected = 2.0 + 1.2 + webm_rest - 0.4 - 0.6
    probed = media.ffprobe(output)
    assert probed.video["codec_name"] == "hevc" and probed.size == (256, 144) and probed.fps == 25
    assert _frames_close(probed.video_duration, expected, 25), (probed.video_duration, expected)
    # Scenes at -6 dBFS and -20 dBFS come out near the -16 LUFS target (two-pass loudnorm).
    assert media.integrated_loudness(output) == pytest.approx(-16, abs=1.0)


def test_hard_cuts_keep_the_full_length(clips: Clips, redis_client: redis.Redis) -> None:
    job = {"scenes": [{"video_path": str(clips.portrait)}, {"video_path": str(clips.landscape)}],
           "output_format": {"width": 160, "height": 120, "fps": 24, "preset": "ultrafast"},
           "transitions": False, "normalize_audio": False}
    outcome = run(redis_client, render_video_task, job)
    assert outcome.error is None, outcome.error
    probed = media.ffprobe(Path(outcome.value["output_path"]))
    expected = media.ffprobe(clips.portrait).duration + media.ffprobe(clips.landscape).duration
    assert _frames_close(probed.video_duration, expected, 24)
    assert probed.audio is not None


NASTY_TEXT = "It's 100% \"free\": a\\b; [x] {y} %{pts} %{localtime}\nfontsize=400:x=0 🎉"


def test_overlays_and_subtitles_appear_where_and_when_asked(clips: Clips, redis_client: redis.Redis) -> None:
    job = {
        "scenes": [{"video_path": str(clips.still)}],
        "output_format": {"width": 320, "height": 240, "fps": 25, "preset": "ultrafast"},
        "overlays": [
            {"type": "image", "path": str(clips.logo), "position": "top-left", "scale": 0.25, "start_time": 0,
             "end_time": 1.0},
            {"type": "text", "text": NASTY_TEXT, "position": "center", "font_size": 11, "color": "yellow",
             "box": False},
        ],
        "subtitles": [{"start": 0.0, "end": 0.8, "text": "Subtitle: \"one\", 100%"}],
    }
    outcome = run(redis_client, render_video_task, job)
    assert outcome.error is None, outcome.error
    output = Path(outcome.value["output_path"])
    early, late = media.frame_rgb(output, 0.4), media.frame_rgb(output, 1.5)

    # The red logo (80 px wide at scale 0.25) sits in the top-left corner for the first second only.
    logo_box = (16, 16, 40, 40)
    red, green, blue = media.region_mean(early, logo_box)
    assert red > 180 and green < 80 and blue < 80
    assert media.region_mean(late, logo_box)[0] < 60  # navy background again

    # The text is literal: "%{pts}" would change between frames if FFmpeg expanded it, and an injected
    # "fontsize=400" would fill the frame. The centre band is identical at 0.4 s and 1.5 s and not navy.
    centre = (20, 100, 280, 40)
    assert media.region_bytes(early, centre) == media.region_bytes(late, centre)
    plain = media.frame_rgb(clips.still, 0.4)
    assert media.region_bytes(early, centre) != media.region_bytes(plain, centre)  # the text was drawn
    assert media.region_mean(early, (0, 0, 320, 12))[0] < 60  # nothing huge spilled to the top edge

    # The subtitle is burned into the bottom band while its cue is on, and gone afterwards.
    bottom = (0, 200, 320, 40)
    assert media.region_bytes(early, bottom) != media.region_bytes(late, bottom)
    assert media.region_mean(late, bottom)[0] < 60


def test_subtitles_from_an_srt_file(clips: Clips, redis_client: redis.Redis) -> None:
    job = {"scenes": [{"video_path": str(clips.still)}], "subtitles": str(clips.srt), "normalize_audio": False,
           "output_format": {"width": 320, "height": 240, "fps": 25, "preset": "ultrafast"}}
    outcome = run(redis_client, render_video_task, job)
    assert outcome.error is None, outcome.error
    output = Path(outcome.value["output_path"])
    bottom = (0, 200, 320, 40)
    during, after = media.frame_rgb(output, 1.0), media.frame_rgb(output, 1.55)  # cue 1 on, then a gap
    assert media.region_bytes(during, bottom) != media.region_bytes(after, bottom)
