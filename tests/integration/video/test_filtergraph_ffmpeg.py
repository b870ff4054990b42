"""The escaping of filtergraph.py against the real FFmpeg parser: paths full of graph syntax still open.

Given a folder whose name contains quotes, colons, brackets, commas, semicolons, a percent sign, a
backslash and spaces, when drawtext (textfile=) and subtitles (filename=, force_style=) point into it,
then FFmpeg opens exactly those files and draws the text (no parse error, no "file not found").
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from geminivideo.video.render import filtergraph as fg
from geminivideo.video.render import fonts, srtfile

NASTY_DIR = "it's: [a], b; 100% c\\d  "


@pytest.fixture
def nasty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / NASTY_DIR
    folder.mkdir()
    return folder


def _draw(vf: str, tmp_path: Path) -> bytes:
    done = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                           "color=c=black:s=160x120:d=0.2", "-vf", vf, "-frames:v", "1", "-f", "rawvideo",
                           "-pix_fmt", "gray", "-"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout) == 160 * 120
    return done.stdout


def test_drawtext_textfile_in_a_hostile_folder(nasty_dir: Path, tmp_path: Path) -> None:
    textfile = nasty_dir / "t'x:t.txt"
    textfile.write_text("Hello: %{pts} 'q' [x]", encoding="utf-8")
    canvas = fg.Canvas(160, 120, Fraction(25))
    layer = fg.TextLayer(str(textfile), "center", 14, "white", False, 1.0, 0, None)
    pixels = _draw(fg.drawtext(layer, canvas), tmp_path)
    assert max(pixels) > 200  # white glyphs on black


def test_subtitles_file_in_a_hostile_folder(nasty_dir: Path, tmp_path: Path) -> None:
    subtitle = nasty_dir / "sub,1.srt"
    subtitle.write_text(srtfile.write_srt([srtfile.Cue(0, 5, "Burned: in, yes")]), encoding="utf-8")
    canvas = fg.Canvas(160, 120, Fraction(25))
    pixels = _draw(fg.burn_subtitles(str(subtitle), canvas), tmp_path)
    assert max(pixels) > 200


def _drawn(text: str, font_file: str, tmp_path: Path) -> bytes:
    textfile = tmp_path / f"text-{len(list(tmp_path.iterdir()))}.txt"
    textfile.write_text(text, encoding="utf-8")
    layer = fg.TextLayer(str(textfile), "center", 48, "white", False, 1.0, 0, None, font_file)
    return _draw(fg.drawtext(layer, fg.Canvas(160, 120, Fraction(25))), tmp_path)


def test_an_emoji_overlay_is_drawn_with_a_font_that_has_it_not_as_a_box(tmp_path: Path) -> None:
    """Given an overlay "🔥", the chosen font draws a real glyph: not what it draws for a character no font has
    (the missing-glyph box), which is all DejaVu Sans alone would draw for it."""
    font = fonts.font_for("🔥")
    unknown = "\U000f0000"  # plane 15 private use: in no font
    assert font != fonts.DEFAULT_FONT
    assert _drawn("🔥", font, tmp_path) != _drawn(unknown, font, tmp_path)
    assert _drawn("🔥", fonts.DEFAULT_FONT, tmp_path) == _drawn(unknown, fonts.DEFAULT_FONT, tmp_path)
    assert max(_drawn("🔥", font, tmp_path)) > 200
