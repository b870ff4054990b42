"""Preview arithmetic: frame times, aspect, sprite grid and the WebVTT thumbnail track."""

from __future__ import annotations

from pathlib import Path

import pytest

from geminivideo.errors import UnsupportedOption
from geminivideo.video import preview
from geminivideo.video.ffmpeg import MediaInfo


def test_frames_sit_in_the_middle_of_equal_slices() -> None:
    assert preview.frame_times(10.0, 4) == [1.25, 3.75, 6.25, 8.75]


def test_thumbnail_height_keeps_aspect() -> None:
    portrait = MediaInfo(Path("/m/p.mp4"), "mov", 1, True, False, 1080, 1920)
    assert preview.thumbnail_height(320, portrait) == 568
    assert preview.thumbnail_filter(320) == "scale=w=320:h=trunc(ow/dar/2)*2,setsar=1"


def test_grid_and_cells() -> None:
    grid = preview.grid_for(10, 320, 180)
    assert (grid.columns, grid.rows) == (4, 3)
    assert grid.cell(0) == (0, 0, 320, 180) and grid.cell(5) == (320, 180, 320, 180)


def test_thumbnail_track() -> None:
    grid = preview.grid_for(4, 160, 90)
    vtt = preview.thumbnails_vtt("sprite.jpg", grid, 8.0, 4)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,160,90\n")
    assert "00:00:06.000 --> 00:00:08.000\nsprite.jpg#xywh=160,90,160,90\n" in vtt
    assert preview.vtt_time(3725.5) == "01:02:05.500"


def test_sprites_too_large_for_the_format_are_refused() -> None:
    preview.check_sprite_size(preview.grid_for(200, 320, 180), "jpg")
    with pytest.raises(UnsupportedOption, match="above the webp limit of 16383 px"):
        preview.check_sprite_size(preview.grid_for(200, 3840, 2160), "webp")
