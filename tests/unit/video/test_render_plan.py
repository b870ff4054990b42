"""Render planning without FFmpeg: frame rates, scene spans, transitions, loudness report, graph text."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from geminivideo.contracts import Scene, TextOverlay, Transition
from geminivideo.errors import InvalidPayload
from geminivideo.video.ffmpeg import MediaInfo
from geminivideo.video.render import filtergraph as fg
from geminivideo.video.render import fonts
from geminivideo.video.render import pipeline as render

CANVAS = fg.Canvas(320, 240, Fraction(25))


@pytest.mark.parametrize(("fps", "rate"), [(29.97, Fraction(30000, 1001)), (23.976, Fraction(24000, 1001)),
                                           (59.94, Fraction(60000, 1001)), (25, Fraction(25)), (12.5, Fraction(25, 2))])
def test_exact_rates(fps: float, rate: Fraction) -> None:
    assert render.rate_fraction(fps) == rate


def _info(duration: float) -> MediaInfo:
    return MediaInfo(Path("/m/a.mp4"), "mov", duration, True, False, 320, 240, 25.0)


def test_scene_spans() -> None:
    assert render.scene_span(0, Scene(video_path="/m/a.mp4"), _info(3.0), 0.04) == (0.0, 3.0)
    assert render.scene_span(0, Scene(video_path="/m/a.mp4", start_time=1, end_time=2.5), _info(3), 0.04) == (1, 1.5)
    # An end a hair past the probed end is rounding, and is clamped.
    assert render.scene_span(0, Scene(video_path="/m/a.mp4", end_time=3.02), _info(3.0), 0.04) == (0.0, 3.0)


@pytest.mark.parametrize(("scene", "message"), [
    ({"start_time": 3.0}, r"scenes\[1\]\.start_time: 3 s is at or past the end of /m/a.mp4 \(3.000 s long\)"),
    ({"end_time": 4.0}, r"scenes\[1\]\.end_time: 4 s is past the end"),
    ({"start_time": 2.97}, r"scenes\[1\]: the trimmed scene lasts 0.030 s, shorter than two frames"),
])
def test_scene_spans_refused(scene: dict, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        render.scene_span(1, Scene(video_path="/m/a.mp4", **scene), _info(3.0), 0.04)


def test_default_transitions_fade_half_a_second_shortened_for_short_scenes() -> None:
    cuts = render.plan_cuts(True, [2.0, 0.6, 2.0], CANVAS)
    assert cuts == [fg.Cut("fade", 0.28), fg.Cut("fade", 0.28)]  # 0.3 s snapped to whole 25 fps frames
    assert render.plan_cuts(False, [2.0, 2.0], CANVAS) is None
    assert render.plan_cuts(True, [2.0], CANVAS) == []


def test_explicit_transitions_snap_to_frames_and_must_fit() -> None:
    cuts = render.plan_cuts([Transition(type="wipeleft", duration=0.33), Transition(type="dissolve", duration=1)],
                            [2.0, 1.4, 2.0], CANVAS)
    assert cuts == [fg.Cut("wipeleft", 0.32), fg.Cut("dissolve", 1.0)]
    with pytest.raises(InvalidPayload, match=r"transitions\[1\]\.duration: 1.2 s does not fit between scene 1"):
        render.plan_cuts(Transition(type="fade", duration=1.2), [2.0, 2.0, 2.0], CANVAS)
    with pytest.raises(InvalidPayload, match=r"transitions: 1 given for 3 scenes; give one per cut \(2\)"):
        render.plan_cuts([Transition()], [2.0, 2.0, 2.0], CANVAS)
    with pytest.raises(InvalidPayload, match=r"transitions\[0\]\.type: 'boom' is not an xfade transition"):
        render.plan_cuts(Transition(type="boom"), [2.0, 2.0], CANVAS)


EBUR128_SUMMARY = """[Parsed_ebur128_3 @ 0x5] Summary:

  Integrated loudness:
    I:         -28.7 LUFS
    Threshold: -41.4 LUFS

  Loudness range:
    LRA:         4.2 LU
    Threshold: -51.7 LUFS
    LRA low:   -34.5 LUFS
    LRA high:  -30.2 LUFS

  True peak:
    Peak:      -26.7 dBFS"""


def test_ebur128_summary() -> None:
    assert render.parse_ebur128(EBUR128_SUMMARY.splitlines()) == fg.Loudness(-28.7, -26.7, 4.2, -41.4)
    assert render.parse_ebur128(["video:0kB audio:1kB"]) is None


def test_graph_keeps_user_text_out_and_wires_every_scene(tmp_path: Path) -> None:
    scenes = [render.PlannedScene(Path("/m/a.mp4"), 0.5, 50, 2.0, True),
              render.PlannedScene(Path("/m/b.mp4"), 0.0, 25, 1.0, False)]
    plan = render.RenderPlan(CANVAS, scenes, [fg.Cut("fade", 0.4)], 2.6)
    textfile = tmp_path / "overlay-0.txt"
    textfile.write_text("secret %{pts}: text")
    plan.layers.items.append(fg.TextLayer(str(textfile), "bottom", 24, "white", True, 1.0, 0, 1))
    graph = render.render_graph(plan, None)
    assert "secret" not in graph and "textfile=" in graph
    assert "[0:v:0]" in graph and "[1:v:0]" in graph and "[0:a:0]" in graph and "[1:a:0]" not in graph
    assert "anullsrc" in graph and "xfade=transition=fade:duration=0.4:offset=1.6" in graph
    assert graph.endswith("atrim=duration=2.6[aout]") and "[vout]" in graph
    assert render.input_arguments(plan)[:4] == ["-ss", "0.5", "-t", "2"]


def test_text_overlays_get_a_font_that_has_their_characters(tmp_path: Path) -> None:
    overlays = [TextOverlay(text="Sale ❤️ 50%\r\n🔥 today"), TextOverlay(text="Plain: Ünïcode, Привет")]
    emoji, plain = render.plan_layers(overlays, 1, 5.0, tmp_path).items
    assert isinstance(emoji, fg.TextLayer) and isinstance(plain, fg.TextLayer)
    assert plain.font_file == fonts.DEFAULT_FONT  # DejaVu Sans covers Latin and Cyrillic
    assert emoji.font_file != fonts.DEFAULT_FONT and emoji.font_file == fonts.font_for("Sale ❤ 50%\n🔥 today")
    # The emoji presentation selector is dropped: a monochrome font would draw it as a box.
    assert Path(emoji.textfile).read_text(encoding="utf-8") == "Sale ❤ 50%\n🔥 today"
