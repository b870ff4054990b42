"""Bad input to render, preview and transcode fails at once, without retries, naming the field and problem.

Given a real worker, when a task gets a missing, silent, truncated or disguised file, a path outside
the media roots, impossible times, sizes, codecs or options, then the caller gets the PermanentError
subclass with a message naming the field, the status ends ``failed``, no retry was published, and no
output appeared. The disguised inputs are an HLS playlist and an FFmpeg concat list named ``.mp4`` that
point at /etc/passwd: FFmpeg's demuxer allow-list refuses both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.errors import InputNotAllowed, InvalidPayload, MediaUnreadable, PermanentError, UnsupportedOption
from geminivideo.video.tasks import generate_preview_task, render_video_task, transcode_task
from tests.integration.video.conftest import Clips
from tests.integration.video.support import entries, run
from tests.support.env import TestEnv as HarnessEnv

pytestmark = pytest.mark.usefixtures("video_worker")

SMALL = {"width": 160, "height": 120, "fps": 25, "preset": "ultrafast"}


def _render(clips: Clips, scene: dict[str, Any] | None = None, **job: Any) -> tuple[Any, tuple, dict]:
    scenes = [scene or {"video_path": str(clips.landscape)}]
    if "scenes" in job:
        scenes = job.pop("scenes")
    return render_video_task, ({"scenes": scenes, "output_format": job.pop("output_format", SMALL), **job},), {}


def _video(path: Any) -> dict[str, Any]:
    return {"video_path": str(path)}


Case = Callable[[Clips], tuple[Any, tuple, dict]]

CASES: dict[str, tuple[Case, type[PermanentError], tuple[str, ...]]] = {
    "render missing file": (lambda c: _render(c, _video(c.landscape.with_name("nope.mp4"))), MediaUnreadable,
                            ("scenes[0].video_path", "file not found")),
    "render audio only": (lambda c: _render(c, _video(c.audio_only)), MediaUnreadable,
                          ("scenes[0].video_path", "no video stream")),
    "render truncated": (lambda c: _render(c, _video(c.truncated)), MediaUnreadable,
                         ("scenes[0].video_path", "not a readable media file")),
    "render hls disguised": (lambda c: _render(c, _video(c.hls)), MediaUnreadable,
                             ("scenes[0].video_path", "not a readable media file")),
    "render concat disguised": (lambda c: _render(c, _video(c.concat)), MediaUnreadable,
                                ("scenes[0].video_path", "not a readable media file")),
    "render outside roots": (lambda c: _render(c, _video(c.outside)), InputNotAllowed,
                             ("scenes[0].video_path", "outside the allowed media roots")),
    "render symlink out": (lambda c: _render(c, _video(c.symlink_out)), InputNotAllowed,
                           ("scenes[0].video_path", "outside the allowed media roots")),
    "render /etc/passwd": (lambda c: _render(c, {"video_path": "/etc/passwd"}), InputNotAllowed,
                           ("scenes[0].video_path",)),
    "render reversed times": (lambda c: _render(c, {"video_path": str(c.landscape), "start_time": 1.5,
                                                    "end_time": 0.5}), InvalidPayload,
                              ("scenes.0", "end_time (0.5) must be greater than start_time (1.5)")),
    "render negative time": (lambda c: _render(c, {"video_path": str(c.landscape), "start_time": -1}),
                             InvalidPayload, ("scenes.0.start_time", "greater than or equal to 0")),
    "render start past end": (lambda c: _render(c, {"video_path": str(c.landscape), "start_time": 9}),
                              InvalidPayload, ("scenes[0].start_time", "past the end")),
    "render end past end": (lambda c: _render(c, {"video_path": str(c.landscape), "end_time": 9}),
                            InvalidPayload, ("scenes[0].end_time", "past the end")),
    "render zero width": (lambda c: _render(c, output_format={"width": 0, "height": 120}), InvalidPayload,
                          ("output_format.width", "greater than or equal to 16")),
    "render absurd height": (lambda c: _render(c, output_format={"width": 160, "height": 100_000}),
                             InvalidPayload, ("output_format.height", "less than or equal to 4320")),
    "render odd width": (lambda c: _render(c, output_format={"width": 161, "height": 120}), InvalidPayload,
                         ("output_format.width", "must be even")),
    "render unknown codec": (lambda c: _render(c, output_format={"codec": "vp8"}), InvalidPayload,
                             ("output_format.codec", "'h264' or 'h265'")),
    "render unknown preset": (lambda c: _render(c, output_format={**SMALL, "preset": "turbo"}), InvalidPayload,
                              ("output_format.preset", "ultrafast")),
    "render crf and bitrate": (lambda c: _render(c, output_format={**SMALL, "crf": 20, "bitrate": "1M"}),
                               InvalidPayload, ("output_format", "not both")),
    "render unknown transition": (lambda c: _render(c, scenes=[_video(c.landscape)] * 2,
                                                    transitions={"type": "explode"}), InvalidPayload,
                                  ("transitions[0].type", "'explode'", "wipeleft")),
    "render transition too long": (lambda c: _render(c, scenes=[_video(c.landscape), _video(c.portrait)],
                                                     transitions=[{"type": "fade", "duration": 1.8}]),
                                   InvalidPayload, ("transitions[0].duration", "does not fit")),
    "render transitions count": (lambda c: _render(c, scenes=[_video(c.landscape)] * 3,
                                                   transitions=[{"type": "fade"}]), InvalidPayload,
                                 ("transitions", "one per cut (2)")),
    "render overlay missing": (lambda c: _render(c, overlays=[{"type": "image",
                                                               "path": str(c.logo.with_name("no.png"))}]),
                               MediaUnreadable, ("overlays[0].path", "file not found")),
    "render overlay after end": (lambda c: _render(c, overlays=[{"type": "text", "text": "x", "start_time": 5}]),
                                 InvalidPayload, ("overlays[0].start_time", "after the end")),
    "render text colour": (lambda c: _render(c, overlays=[{"type": "text", "text": "x", "color": "blurple"}]),
                           InvalidPayload, ("overlays[0].color", "blurple")),
    "render subtitles outside": (lambda c: _render(c, subtitles="/etc/passwd"), InputNotAllowed,
                                 ("subtitles",)),
    "render subtitles not srt": (lambda c: _render(c, subtitles=str(c.hls)), InvalidPayload,
                                 ("subtitles", "no subtitle cues")),
    "render unknown field": (lambda c: _render(c, scenes=[{"video_path": str(c.landscape), "speed": 2}]),
                             InvalidPayload, ("scenes.0.speed", "Extra inputs are not permitted")),
    "preview missing file": (lambda c: (generate_preview_task, (str(c.landscape.with_name("x.mp4")),), {}),
                             MediaUnreadable, ("video_path", "file not found")),
    "preview hls disguised": (lambda c: (generate_preview_task, (str(c.hls),), {}), MediaUnreadable,
                              ("video_path", "not a readable media file")),
    "preview zero frames": (lambda c: (generate_preview_task, (str(c.landscape), 0), {}), InvalidPayload,
                            ("num_frames", "greater than or equal to 1")),
    "preview format": (lambda c: (generate_preview_task, (str(c.landscape),), {"format": "gif"}),
                       InvalidPayload, ("format", "'jpg' or 'webp'")),
    "preview huge sprite": (lambda c: (generate_preview_task, (str(c.portrait), 200),
                                       {"width": 3840, "sprite": True}), UnsupportedOption,
                            ("sprite", "lower num_frames or width")),
    "transcode h264 in webm": (lambda c: (transcode_task, (str(c.landscape), {"codec": "h264", "container": "webm"}),
                                          {}), UnsupportedOption, ("output_format", "webm takes vp9, av1")),
    "transcode unknown codec": (lambda c: (transcode_task, (str(c.landscape), {"codec": "mpeg2"}), {}),
                                InvalidPayload, ("output_format.codec", "'h264', 'h265', 'vp9' or 'av1'")),
    "transcode crf range": (lambda c: (transcode_task, (str(c.landscape), {"codec": "h264", "crf": 60}), {}),
                            InvalidPayload, ("output_format.crf", "0–51")),
    "transcode bad bitrate": (lambda c: (transcode_task, (str(c.landscape), {"bitrate": "5"}), {}),
                              InvalidPayload, ("output_format.bitrate", "16k–200M")),
    "transcode concat disguised": (lambda c: (transcode_task, (str(c.concat), {}), {}), MediaUnreadable,
                                   ("input_path", "not a readable media file")),
    "transcode zero height": (lambda c: (transcode_task, (str(c.landscape), {"height": 0}), {}), InvalidPayload,
                              ("output_format.height",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_at_once_naming_the_field(case: str, clips: Clips, redis_client: redis.Redis,
                                                  test_env: HarnessEnv) -> None:
    build, expected_type, fragments = CASES[case]
    task, args, kwargs = build(clips)
    outputs_before = entries(test_env.render_dir), entries(test_env.preview_dir)
    started = time.monotonic()
    outcome = run(redis_client, task, *args, timeout_s=60, **kwargs)
    elapsed = time.monotonic() - started

    assert isinstance(outcome.error, expected_type), repr(outcome.error)
    message = str(outcome.error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert outcome.statuses[-1] is TaskStatus.FAILED
    assert TaskStatus.RETRYING not in outcome.statuses
    assert outcome.result.retries in (0, None)
    assert elapsed < 30
    assert (entries(test_env.render_dir), entries(test_env.preview_dir)) == outputs_before
