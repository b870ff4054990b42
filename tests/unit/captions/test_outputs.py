"""Caption files are written all or nothing, under names that cannot collide or escape RENDER_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from geminivideo.video.captions.pipeline import output_stem, write_atomically


def test_all_files_appear_together(tmp_path: Path) -> None:
    files = {tmp_path / "a.srt": "1\n00:00:00,000 --> 00:00:01,000\nHi\n", tmp_path / "a.vtt": "WEBVTT\n"}
    write_atomically(files)
    assert {p: p.read_text() for p in files} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.srt", "a.vtt"]


def test_empty_caption_files_are_valid_outputs(tmp_path: Path) -> None:
    write_atomically({tmp_path / "silent.srt": ""})
    assert (tmp_path / "silent.srt").read_text() == ""


def test_a_failure_on_a_later_file_removes_the_earlier_ones_and_every_temporary(tmp_path: Path) -> None:
    blocked = tmp_path / "a.vtt"
    blocked.mkdir()
    (blocked / "keep").write_text("x")  # a non-empty folder: renaming a file over it fails
    with pytest.raises(OSError):
        write_atomically({tmp_path / "a.srt": "srt", blocked: "WEBVTT\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vtt"]


@pytest.mark.parametrize(("name", "prefix"), [("my ad (final).mp4", "my_ad_final-"), ("../../x.mp4", "x-"),
                                              ("....mp4", "captions-")])
def test_output_names_are_safe_and_unique(name: str, prefix: str) -> None:
    first, second = output_stem(Path("/media") / name), output_stem(Path("/media") / name)
    assert first.startswith(prefix) and first != second
    assert "/" not in first
