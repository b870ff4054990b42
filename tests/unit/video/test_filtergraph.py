"""Filter-graph text: escaping that FFmpeg's two tokenizer levels undo exactly, and each chain's shape."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geminivideo.video.render import filtergraph as fg

WHITESPACE = " \n\t\r"


def get_token(text: str, terms: str) -> tuple[str, str]:
    """A transcription of libavutil's av_get_token: (token, rest of the input)."""
    i, out, end = 0, [], 0
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    while i < len(text) and text[i] not in terms:
        c = text[i]
        i += 1
        if c == "\\" and i < len(text):
            out.append(text[i])
            i += 1
            end = len(out)
        elif c == "'":
            while i < len(text) and text[i] != "'":
                out.append(text[i])
                i += 1
            if i < len(text):
                i += 1
                end = len(out)
        else:
            out.append(c)
    while len(out) > end and out[-1] in WHITESPACE:
        out.pop()
    return "".join(out), text[i:]


def ffmpeg_reads(escaped: str) -> tuple[str, str]:
    """What a filter receives for ``key=<escaped>``: graph level ("[],;"), then option level (":")."""
    graph_token, graph_rest = get_token(escaped, "[],;")
    value, option_rest = get_token(graph_token, ":")
    return value, graph_rest + option_rest


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])))
def test_escaped_values_reach_the_filter_unchanged(value: str) -> None:
    assert ffmpeg_reads(fg.escape_value(value)) == (value, "")


@pytest.mark.parametrize("value", ["/tmp/it's: [a], b; c\\d", " lead and trail ", "FontName=DejaVu Sans,Outline=1",
                                   "between(t,1,2)", "%{pts}", "x\ny"])
def test_tricky_values(value: str) -> None:
    assert ffmpeg_reads(fg.escape_value(value)) == (value, "")


def test_filter_and_chain_text() -> None:
    assert fg.filt("scale", w=320, h=-2) == "scale=w=320:h=-2"
    assert fg.filt("fps", Fraction(30000, 1001)) == "fps=30000/1001"
    assert fg.filt("overlay", x="10", enable=None) == "overlay=x=10"
    assert fg.filt("anull") == "anull"
    assert fg.chain(["0:v", "1:v"], ["a", "b"], "out") == "[0:v][1:v]a,b[out]"
    assert fg.graph(["x", "y"]) == "x;y"


@pytest.mark.parametrize(("value", "text"), [(1.5, "1.5"), (2.0, "2"), (1e-7, "0"), (-0.0, "0"),
                                             (0.3333333, "0.333333"), (Fraction(25), "25"),
                                             (Fraction(24000, 1001), "24000/1001")])
def test_numbers(value: float, text: str) -> None:
    assert fg.num(value) == text


CANVAS = fg.Canvas(320, 240, Fraction(30))


def test_scene_video_normalises_in_the_order_xfade_needs() -> None:
    text = fg.scene_video(2, 45, CANVAS, "v2")
    assert text.startswith("[2:v:0]setpts=PTS-STARTPTS,scale=") and text.endswith("[v2]")
    order = [text.index(name) for name in ("scale=", "pad=", "fps=", "settb=AVTB", "format=yuv420p", "tpad=",
                                           "trim=end_frame=45")]
    assert order == sorted(order)


def test_audio_chains_are_48k_stereo_of_the_scene_length() -> None:
    assert fg.scene_audio(1, 1.5, "a1") == ("[1:a:0]asetpts=PTS-STARTPTS,aresample=48000,"
                                             f"{fg.AUDIO_FORMAT},apad,atrim=duration=1.5[a1]")
    assert fg.silence(2, "a0").startswith("anullsrc=r=48000:cl=stereo,atrim=duration=2,")


def test_transition_offsets_and_total_length() -> None:
    cuts = [fg.Cut("fade", 0.5), fg.Cut("wipeleft", 1.0)]
    assert fg.xfade_offsets([2, 3, 4], cuts) == [1.5, 3.5]
    assert fg.output_duration([2, 3, 4], cuts) == 7.5


def test_join_with_transitions_chains_xfade_and_matching_acrossfade() -> None:
    cuts = [fg.Cut("fade", 0.5), fg.Cut("dissolve", 0.25)]
    video = fg.join_video(["v0", "v1", "v2"], [2, 2, 2], cuts, "vj")
    audio = fg.join_audio(["a0", "a1", "a2"], cuts, "aj")
    assert video == ["[v0][v1]xfade=transition=fade:duration=0.5:offset=1.5[xv1]",
                     "[xv1][v2]xfade=transition=dissolve:duration=0.25:offset=3.25[vj]"]
    assert audio == ["[a0][a1]acrossfade=d=0.5:c1=tri:c2=tri[xa1]", "[xa1][a2]acrossfade=d=0.25:c1=tri:c2=tri[aj]"]


def test_hard_cuts_and_single_scenes() -> None:
    assert fg.join_video(["v0", "v1"], [1, 1], None, "vj") == ["[v0][v1]concat=n=2:v=1:a=0[vj]"]
    assert fg.join_audio(["a0", "a1"], None, "aj") == ["[a0][a1]concat=n=2:v=0:a=1[aj]"]
    assert fg.join_video(["v0"], [1], [], "vj") == ["[v0]null[vj]"]
    assert fg.join_audio(["a0"], [], "aj") == ["[a0]anull[aj]"]


@pytest.mark.parametrize(("position", "xy"), [
    ("top-left", ("8", "8")), ("top", ("(W-w)/2", "8")), ("top-right", ("W-w-8", "8")),
    ("center", ("(W-w)/2", "(H-h)/2")), ("bottom-left", ("8", "H-h-8")), ("bottom", ("(W-w)/2", "H-h-8")),
    ("bottom-right", ("W-w-8", "H-h-8")),
])
def test_positions(position: str, xy: tuple[str, str]) -> None:
    assert fg.position_xy(position, 8, ("W", "H"), ("w", "h")) == xy


def test_time_windows() -> None:
    assert fg.time_window(0, None) is None
    assert fg.time_window(1.5, None) == "gte(t,1.5)"
    assert fg.time_window(1, 2.5) == "between(t,1,2.5)"


def test_image_overlay_scales_fades_and_places() -> None:
    layer = fg.ImageLayer(input_index=3, position="top-right", scale=0.25, opacity=0.5, start_s=1, end_s=2)
    prepared, placed = fg.image_overlay("base", layer, CANVAS, "l0")
    assert prepared == "[3:v:0]scale=w=80:h=-1,format=rgba,colorchannelmixer=aa=0.5[l0_img]"
    assert placed == ("[base][l0_img]overlay=x=main_w-overlay_w-10:y=10:eof_action=repeat:"
                      "enable=between(t\\,1\\,2)[l0]")


def test_drawtext_reads_its_text_from_a_file_without_expansion() -> None:
    layer = fg.TextLayer("/tmp/work dir/overlay-0.txt", "bottom", 32, "#ffcc00", True, 0.8, 0, None)
    text = fg.drawtext(layer, CANVAS)
    assert text.startswith("drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:")
    assert "textfile=/tmp/work\\\\\\ dir/overlay-0.txt" in text
    assert ":expansion=none:" in text and "fontcolor=#ffcc00@0.8" in text and "box=1" in text
    assert ":text=" not in text and "enable" not in text


def test_subtitles_style_is_escaped_as_one_value() -> None:
    text = fg.burn_subtitles("/tmp/s.srt", CANVAS, style="FontName=DejaVu Sans,FontSize=20")
    assert text == ("subtitles=filename=/tmp/s.srt:original_size=320x240:"
                    "force_style=FontName=DejaVu\\\\\\ Sans\\,FontSize=20")
    assert ffmpeg_reads(text.split("force_style=", 1)[1])[0] == "FontName=DejaVu Sans,FontSize=20"


def test_loudness_second_pass_is_linear_from_the_measurement() -> None:
    measured = fg.Loudness(integrated_lufs=-28.7, true_peak_dbtp=-26.7, range_lu=4.2, threshold_lufs=-41.4)
    text = fg.loudnorm_apply(measured)
    assert text == ("loudnorm=I=-16:TP=-1.5:LRA=11:measured_I=-28.7:measured_TP=-26.7:measured_LRA=4.2:"
                    "measured_thresh=-41.4:offset=0:linear=true")
    finished = fg.finish_audio("m", 4.5, "out", text)
    assert finished == f"[m]{text},aresample=48000,{fg.AUDIO_FORMAT},atrim=duration=4.5[out]"
    assert fg.finish_audio("m", 4.5, "out", None).startswith("[m]aresample=48000,")
