"""Generated inputs for the render, preview and transcode tests, made once per session.

Small on purpose (320x240 at most, 1.5–3 s): the clips differ in what matters to the code under test —
size and aspect ratio, frame rate, pixel format, container, audio or not — not in length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import media
from tests.support.env import TestEnv as HarnessEnv  # aliased: pytest would try to collect Test*


@dataclass(frozen=True)
class Clips:
    landscape: Path  # 320x240, 25 fps, yuv420p, AAC tone, 2 s, MP4
    portrait: Path  # 180x320 (9:16), 30 fps, yuv444p, no audio, 1.5 s, MP4
    webm: Path  # 256x144 (16:9), 24 fps, VP9 + Opus, 3 s
    still: Path  # 320x240 navy, 25 fps, no audio, 2 s: a static picture for pixel checks
    loud: Path  # 320x240, 25 fps, tone at -6 dBFS, 3 s: far louder than -16 LUFS
    long: Path  # 160x120, 25 fps, tone, 30 s: long enough to cancel or time out mid-encode
    logo: Path  # 64x64 red PNG
    audio_only: Path  # AAC in MP4, no video stream
    truncated: Path  # first half of an MP4 whose index was at the end
    hls: Path  # an HLS playlist named .mp4, pointing at /etc/passwd
    concat: Path  # an FFmpeg concat list named .mp4, pointing at /etc/passwd
    srt: Path  # a small SRT file
    outside: Path  # a real video outside MEDIA_ROOTS
    symlink_out: Path  # a symlink inside the media dir to the video outside


@pytest.fixture(scope="session")
def clips(test_env: HarnessEnv) -> Clips:
    folder = test_env.media_dir / "video-tests"
    folder.mkdir(parents=True, exist_ok=True)
    outside_dir = test_env.root / "not-media"
    outside_dir.mkdir(exist_ok=True)
    outside = media.make_video(outside_dir / "outside.mp4", duration_s=1, size=(160, 120))
    symlink_out = folder / "link-out.mp4"
    if not symlink_out.is_symlink():
        os.symlink(outside, symlink_out)
    srt_path = folder / "captions.srt"
    srt_path.write_text("1\n00:00:00,200 --> 00:00:01,500\nFrom a file: ça marche\n\n"
                        "2\n00:00:01,600 --> 00:00:02,800\nSecond cue\n", encoding="utf-8")
    unindexed = media.make_video(folder / "unindexed.mp4", duration_s=2, faststart=False)
    return Clips(
        landscape=media.make_video(folder / "landscape.mp4", duration_s=2, size=(320, 240), fps=25),
        portrait=media.make_video(folder / "portrait.mp4", duration_s=1.5, size=(180, 320), fps=30, audio=False,
                                  pix_fmt="yuv444p"),
        webm=media.make_video(folder / "wide.webm", duration_s=3, size=(256, 144), fps=24, tone_hz=220),
        still=media.make_video(folder / "still.mp4", duration_s=2, source="color", color="navy", audio=False),
        loud=media.make_video(folder / "loud.mp4", duration_s=3, volume_db=-6),
        long=media.make_video(folder / "long.mp4", duration_s=30, size=(160, 120)),
        logo=media.make_image(folder / "logo.png", size=(64, 64), color="red"),
        audio_only=media.make_audio(folder / "audio-only.mp4"),
        truncated=media.make_truncated(unindexed, folder / "truncated.mp4"),
        hls=media.make_hls_disguised(folder / "playlist.mp4"),
        concat=media.make_concat_disguised(folder / "list.mp4"),
        srt=srt_path,
        outside=outside,
        symlink_out=symlink_out,
    )
