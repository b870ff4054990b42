"""FFmpeg filter-graph text, built by small pure functions that unit tests can check one by one.

Every value that reaches the graph goes through ``escape_value``, which applies FFmpeg's two quoting
levels (option value, then graph), so a path or style string can never end an option, a filter or a
chain. User text is never put into the graph at all: drawtext reads it from a file (``textfile=``) with
``expansion=none``, so quotes, colons, ``%{...}``, ``;`` or newlines are drawn literally.

xfade needs both inputs at the same size, pixel format, frame rate and timebase, so every scene is
normalised in the order the field notes found to work: scale/pad, ``fps``, ``settb``, ``format``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from geminivideo.video.render.fonts import DEFAULT_FONT

SAMPLE_RATE = 48_000
AUDIO_FORMAT = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
OUTPUT_PIX_FMT = "yuv420p"
LOUDNESS_TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
SUBTITLE_STYLE = (
    "FontName=DejaVu Sans,FontSize=20,PrimaryColour=&H00FFFFFF,OutlineColour=&H00000000,BackColour=&H80000000,"
    "BorderStyle=1,Outline=1.5,Shadow=0.5,MarginV=16"
)
# Every transition of FFmpeg 5.1's xfade filter except "custom" (which takes an expression).
XFADE_TYPES = (
    "fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown",
    "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial", "smoothleft", "smoothright",
    "smoothup", "smoothdown", "circleopen", "circleclose", "vertopen", "vertclose", "horzopen", "horzclose",
    "dissolve", "pixelize", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice", "vdslice",
    "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr", "squeezeh", "squeezev", "zoomin", "fadefast",
    "fadeslow",
)

# Both levels also escape FFmpeg's whitespace, which its tokenizer would otherwise trim from either end.
_LEVEL1 = re.compile(r"([\\': \n\t\r])")
_LEVEL2 = re.compile(r"([\\'\[\],; \n\t\r])")

Value = str | int | float | Fraction


def escape_value(value: str) -> str:
    """Quote one option value for a filter graph: first as an option value, then for the graph parser."""
    return _LEVEL2.sub(r"\\\1", _LEVEL1.sub(r"\\\1", value))


def num(value: float | Fraction) -> str:
    """A number as FFmpeg reads it: no exponent, at most microsecond precision, no trailing zeros."""
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _render(value: Value) -> str:
    return escape_value(value) if isinstance(value, str) else num(value)


def filt(name: str, *positional: Value, **options: Value | None) -> str:
    """One filter: ``name=pos:key=value…``; options whose value is None are left out."""
    parts = [_render(v) for v in positional]
    parts += [f"{key}={_render(value)}" for key, value in options.items() if value is not None]
    return f"{name}={':'.join(parts)}" if parts else name


def chain(inputs: Sequence[str], filters: Sequence[str], output: str) -> str:
    """``[in1][in2]f1,f2[out]``: a linear chain from labelled pads to one labelled pad."""
    return "".join(f"[{label}]" for label in inputs) + ",".join(filters) + f"[{output}]"


def graph(chains: Sequence[str]) -> str:
    return ";".join(chains)


# ─── scenes ───────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Canvas:
    """The output picture every scene is fitted to."""

    width: int
    height: int
    fps: Fraction

    @property
    def frame_s(self) -> float:
        return float(1 / self.fps)

    def frames(self, seconds: float, minimum: int = 1) -> int:
        """The nearest whole number of frames (at least ``minimum``)."""
        return max(minimum, round(seconds * self.fps))

    def seconds(self, frames: int) -> float:
        return float(frames / self.fps)


def scene_video(input_index: int, frames: int, canvas: Canvas, output: str) -> str:
    """Fit one (already trimmed) scene into the canvas, at the canvas rate, exactly ``frames`` long.

    ``tpad`` clones the last frame if the stream ends early (a video track shorter than its container),
    and ``trim`` cuts by frame count, so scene lengths and xfade offsets stay on the frame grid.
    """
    w, h = canvas.width, canvas.height
    return chain([f"{input_index}:v:0"], [
        "setpts=PTS-STARTPTS",
        filt("scale", w=w, h=h, force_original_aspect_ratio="decrease", force_divisible_by=2),
        filt("pad", w=w, h=h, x="(ow-iw)/2", y="(oh-ih)/2", color="black"),
        "setsar=1",
        filt("fps", canvas.fps),
        "settb=AVTB",
        filt("format", OUTPUT_PIX_FMT),
        filt("tpad", stop_mode="clone", stop_duration=canvas.seconds(frames)),
        filt("trim", end_frame=frames),
    ], output)


def scene_audio(input_index: int, duration_s: float, output: str) -> str:
    """One scene's first audio track as 48 kHz stereo, padded with silence or cut to ``duration_s``."""
    return chain([f"{input_index}:a:0"], [
        "asetpts=PTS-STARTPTS", filt("aresample", SAMPLE_RATE), AUDIO_FORMAT, "apad",
        filt("atrim", duration=duration_s),
    ], output)


def silence(duration_s: float, output: str) -> str:
    """Silence for a scene without audio, so the soundtrack stays continuous across cuts."""
    return chain([], [filt("anullsrc", r=SAMPLE_RATE, cl="stereo"), filt("atrim", duration=duration_s),
                      AUDIO_FORMAT], output)


# ─── joining scenes ───────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Cut:
    """A transition between two consecutive scenes."""

    type: str
    duration_s: float


def xfade_offsets(durations: Sequence[float], cuts: Sequence[Cut]) -> list[float]:
    """Where each transition starts on the output timeline: the joined length so far minus its overlap."""
    offsets, length = [], durations[0]
    for duration, cut in zip(durations[1:], cuts, strict=True):
        offsets.append(length - cut.duration_s)
        length += duration - cut.duration_s
    return offsets


def output_duration(durations: Sequence[float], cuts: Sequence[Cut]) -> float:
    """Sum of the scene durations minus the transition overlaps."""
    return sum(durations) - sum(cut.duration_s for cut in cuts)


def join_video(videos: Sequence[str], durations: Sequence[float], cuts: Sequence[Cut] | None, output: str) -> list[str]:
    """Chain xfade over the scene pads (at the offsets above), or concat them when ``cuts`` is None."""
    if len(videos) == 1:
        return [chain([videos[0]], ["null"], output)]
    if cuts is None:
        return [chain(videos, [filt("concat", n=len(videos), v=1, a=0)], output)]
    chains, last = [], videos[0]
    for k, (cut, offset) in enumerate(zip(cuts, xfade_offsets(durations, cuts), strict=True), start=1):
        label = output if k == len(cuts) else f"xv{k}"
        chains.append(chain([last, videos[k]], [filt("xfade", transition=cut.type, duration=cut.duration_s,
                                                      offset=offset)], label))
        last = label
    return chains


def join_audio(audios: Sequence[str], cuts: Sequence[Cut] | None, output: str) -> list[str]:
    """Crossfade the scene soundtracks with the same durations as the video transitions, or concat them."""
    if len(audios) == 1:
        return [chain([audios[0]], ["anull"], output)]
    if cuts is None:
        return [chain(audios, [filt("concat", n=len(audios), v=0, a=1)], output)]
    chains, last = [], audios[0]
    for k, cut in enumerate(cuts, start=1):
        label = output if k == len(cuts) else f"xa{k}"
        chains.append(chain([last, audios[k]], [filt("acrossfade", d=cut.duration_s, c1="tri", c2="tri")], label))
        last = label
    return chains


# ─── overlays, text, subtitles ────────────────────────────────────────────────────────────────────────
def position_xy(position: str, margin: int, outer: tuple[str, str], inner: tuple[str, str]) -> tuple[str, str]:
    """x/y expressions placing an ``inner`` box inside an ``outer`` one (names are FFmpeg variables)."""
    (ow, oh), (iw, ih) = outer, inner
    horizontal = {"left": str(margin), "center": f"({ow}-{iw})/2", "right": f"{ow}-{iw}-{margin}"}
    vertical = {"top": str(margin), "center": f"({oh}-{ih})/2", "bottom": f"{oh}-{ih}-{margin}"}
    if position == "center":
        return horizontal["center"], vertical["center"]
    row, _, column = position.partition("-")
    return horizontal[column or "center"], vertical[row]


def time_window(start_s: float, end_s: float | None) -> str | None:
    """An ``enable`` expression for [start, end); None when the item is always shown."""
    if end_s is None:
        return None if start_s <= 0 else f"gte(t,{num(start_s)})"
    return f"between(t,{num(start_s)},{num(end_s)})"


def margin_for(canvas: Canvas) -> int:
    """A safe-area margin that scales with the picture (about 4 % of the short side)."""
    return max(4, round(min(canvas.width, canvas.height) * 0.04))


@dataclass(frozen=True)
class ImageLayer:
    input_index: int
    position: str
    scale: float
    opacity: float
    start_s: float
    end_s: float | None


def image_overlay(base: str, layer: ImageLayer, canvas: Canvas, label: str) -> list[str]:
    """Scale an image to a share of the canvas width, apply its opacity, and place it over ``base``."""
    width = max(2, round(canvas.width * layer.scale))
    prepared = f"{label}_img"
    x, y = position_xy(layer.position, margin_for(canvas), ("main_w", "main_h"), ("overlay_w", "overlay_h"))
    return [
        chain([f"{layer.input_index}:v:0"], [
            filt("scale", w=width, h=-1), filt("format", "rgba"), filt("colorchannelmixer", aa=layer.opacity),
        ], prepared),
        chain([base, prepared], [
            filt("overlay", x=x, y=y, eof_action="repeat", enable=time_window(layer.start_s, layer.end_s)),
        ], label),
    ]


FONT_FILE = DEFAULT_FONT


@dataclass(frozen=True)
class TextLayer:
    textfile: str
    position: str
    font_size: int
    color: str
    box: bool
    opacity: float
    start_s: float
    end_s: float | None
    font_file: str = FONT_FILE  # fonts.font_for(text) picks one that has the text's characters


def drawtext(layer: TextLayer, canvas: Canvas) -> str:
    """drawtext reading its text from a file, with expansion off: the text is never parsed by FFmpeg."""
    x, y = position_xy(layer.position, margin_for(canvas), ("w", "h"), ("text_w", "text_h"))
    return filt(
        "drawtext",
        fontfile=layer.font_file, textfile=layer.textfile, expansion="none",
        fontsize=layer.font_size, fontcolor=f"{layer.color}@{num(layer.opacity)}",
        box=1 if layer.box else 0, boxcolor=f"black@{num(0.5 * layer.opacity)}" if layer.box else None,
        boxborderw=max(2, layer.font_size // 4) if layer.box else None,
        line_spacing=max(1, layer.font_size // 6), fix_bounds=1, x=x, y=y,
        enable=time_window(layer.start_s, layer.end_s),
    )


def burn_subtitles(srt_path: str, canvas: Canvas, style: str = SUBTITLE_STYLE) -> str:
    """libass burn-in of an SRT file written by us, with a readable default style."""
    return filt("subtitles", filename=srt_path, original_size=f"{canvas.width}x{canvas.height}", force_style=style)


# ─── audio finishing ──────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Loudness:
    """EBU R128 measurement of the joined soundtrack (first pass)."""

    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float
    threshold_lufs: float


def loudness_measure() -> str:
    """The reference BS.1770 meter. loudnorm's own first pass misreads clips of a few seconds (measured
    here: -32 LUFS for a mix that ebur128 and loudnorm's second pass both put at -28.7), so it is not used."""
    return filt("ebur128", peak="true", framelog="verbose")


def loudnorm_apply(measured: Loudness) -> str:
    """Second pass: linear gain from the measurement (loudnorm falls back to dynamic when peaks forbid it)."""
    return filt(
        "loudnorm", I=LOUDNESS_TARGET_LUFS, TP=TRUE_PEAK_DBTP, LRA=LOUDNESS_RANGE_LU,
        measured_I=measured.integrated_lufs, measured_TP=measured.true_peak_dbtp, measured_LRA=measured.range_lu,
        measured_thresh=measured.threshold_lufs, offset=0, linear="true",
    )


def loudnorm_single_pass() -> str:
    """One-pass (dynamic) loudnorm, used only if the measurement pass gave no report."""
    return filt("loudnorm", I=LOUDNESS_TARGET_LUFS, TP=TRUE_PEAK_DBTP, LRA=LOUDNESS_RANGE_LU)


def finish_audio(source: str, duration_s: float, output: str, loudness_filter: str | None) -> str:
    """Loudness normalisation (when asked), back to 48 kHz stereo, cut to the exact output length."""
    filters = [loudness_filter] if loudness_filter else []
    filters += [filt("aresample", SAMPLE_RATE), AUDIO_FORMAT, filt("atrim", duration=duration_s)]
    return chain([source], filters, output)
