"""Render an ad from scenes: trim, fit, join with transitions, overlay, burn subtitles, normalise, encode.

The pipeline, one function per step:

1. ``plan_scenes``: resolve and probe every scene, work out its exact trimmed duration;
2. ``plan_cuts``: the transition before each scene, checked against the scene lengths;
3. ``plan_layers``: image overlays resolved and probed, overlay text written to files, time windows checked;
4. ``write_subtitles``: SRT path or cues rewritten as a clean SRT in the scratch folder;
5. ``measure_loudness``: an audio-only EBU R128 pass (cheap: video is demuxed, not decoded), then
   loudnorm applies a linear gain to about -16 LUFS in the final pass;
6. ``encode``: one FFmpeg run of the whole graph into a hidden partial file, verified with ffprobe, then
   renamed. Output duration = sum of scene durations − transition overlaps, to the frame.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from geminivideo.config import get_settings
from geminivideo.contracts import (
    ImageOverlay,
    RenderJob,
    RenderOutputFormat,
    RenderResult,
    Scene,
    SubtitleCue,
    TextOverlay,
    Transition,
    utcnow,
)
from geminivideo.errors import InvalidPayload, MediaUnreadable, ProcessingFailed
from geminivideo.progress import ProgressCallback, no_progress
from geminivideo.video.encoders import RateControl, check_preset, rate_control, video_args
from geminivideo.video.ffmpeg import MediaInfo, atomic_output, input_args, probe
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.media import ensure_output_dir, resolve_input
from geminivideo.video.render import filtergraph as fg
from geminivideo.video.render import srtfile
from geminivideo.video.render.fonts import drawable_text, font_for
from geminivideo.video.render.gpu import EncoderDecision, choose_encoder
from geminivideo.video.workspace import Deadline, checked_media, run_ffmpeg_within, scratch_dir

DEFAULT_TRANSITION = Transition()
END_TOLERANCE_S = 0.05  # an end_time this far past a file's probed end is rounding, not a mistake
SOFTWARE_ENCODERS = {"h264": "libx264", "h265": "libx265"}
AUDIO_ARGS = ["-c:a", "aac", "-b:a", "160k", "-ar", str(fg.SAMPLE_RATE), "-ac", "2"]
PROBE_THREADS = 4
SILENCE_LUFS = -69.5  # ebur128 reports -70 (its absolute gate) for silence


# ─── 1. scenes ────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class PlannedScene:
    path: Path
    start_s: float
    frames: int
    duration_s: float  # exactly ``frames`` at the output rate
    has_audio: bool


def rate_fraction(fps: float) -> Fraction:
    """An exact frame rate: 29.97 → 30000/1001 (NTSC family), 25 → 25, 12.5 → 25/2."""
    for base in (24, 30, 60, 120):
        if abs(fps - base * 1000 / 1001) < 0.005:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def canvas_for(fmt: RenderOutputFormat) -> fg.Canvas:
    return fg.Canvas(fmt.width, fmt.height, rate_fraction(fmt.fps))


def scene_span(index: int, scene: Scene, info: MediaInfo, frame_s: float) -> tuple[float, float]:
    """(start, duration) of a scene within its file; refuses times outside the file.

    The duration is later rounded to whole output frames, so lengths and offsets add up exactly.
    """
    where = f"scenes[{index}]"
    start = scene.start_time or 0.0
    if start >= info.duration:
        raise InvalidPayload(f"{where}.start_time: {start:g} s is at or past the end of {scene.video_path} "
                             f"({info.duration:.3f} s long)")
    end = info.duration if scene.end_time is None else scene.end_time
    if end > info.duration + END_TOLERANCE_S:
        raise InvalidPayload(f"{where}.end_time: {end:g} s is past the end of {scene.video_path} "
                             f"({info.duration:.3f} s long)")
    duration = min(end, info.duration) - start
    if duration < 2 * frame_s:
        raise InvalidPayload(f"{where}: the trimmed scene lasts {duration:.3f} s, shorter than two frames")
    return start, duration


def _probe_all(scenes: Sequence[Scene]) -> list[MediaInfo]:
    """Probe the scenes side by side: each ffprobe spends most of its ~0.3 s starting up, not reading."""
    with ThreadPoolExecutor(max_workers=min(PROBE_THREADS, len(scenes))) as pool:
        return list(pool.map(lambda item: checked_media(item[1].video_path, f"scenes[{item[0]}].video_path"),
                             enumerate(scenes)))


def plan_scenes(scenes: Sequence[Scene], canvas: fg.Canvas) -> list[PlannedScene]:
    planned = []
    for index, (scene, info) in enumerate(zip(scenes, _probe_all(scenes), strict=True)):
        start, duration = scene_span(index, scene, info, canvas.frame_s)
        frames = canvas.frames(duration, minimum=2)
        planned.append(PlannedScene(info.path, start, frames, canvas.seconds(frames), info.has_audio))
    return planned


# ─── 2. transitions ───────────────────────────────────────────────────────────────────────────────────
def _requested_cuts(transitions: bool | Transition | list[Transition], cuts: int) -> list[Transition] | None:
    if transitions is False:
        return None
    if transitions is True:
        return [DEFAULT_TRANSITION] * cuts
    if isinstance(transitions, Transition):
        return [transitions] * cuts
    if len(transitions) != cuts:
        raise InvalidPayload(f"transitions: {len(transitions)} given for {cuts + 1} scenes; give one per cut "
                             f"({cuts}), a single object for all, true (fade) or false (hard cuts)")
    return list(transitions)


def _check_cut(k: int, cut: Transition, durations: Sequence[float], incoming: float) -> None:
    if cut.type not in fg.XFADE_TYPES:
        raise InvalidPayload(f"transitions[{k}].type: {cut.type!r} is not an xfade transition; choose one of "
                             f"{', '.join(fg.XFADE_TYPES)}")
    before, after = durations[k], durations[k + 1]
    if cut.duration + incoming > before + 1e-6 or cut.duration > after + 1e-6:
        raise InvalidPayload(f"transitions[{k}].duration: {cut.duration:g} s does not fit between scene {k} "
                             f"({before:.3f} s, {incoming:g} s already in a transition) and scene {k + 1} "
                             f"({after:.3f} s)")


def plan_cuts(transitions: bool | Transition | list[Transition], durations: Sequence[float],
              canvas: fg.Canvas) -> list[fg.Cut] | None:
    """The transition before each scene after the first (whole frames long), or None for hard cuts.

    The default (``true``) shortens its half-second fade for very short scenes; explicit durations that do
    not fit are refused instead, since silently changing them would change the output length.
    """
    if len(durations) < 2:
        return []
    requested = _requested_cuts(transitions, len(durations) - 1)
    if requested is None:
        return None
    if transitions is True:
        # Whole frames, rounded down, so two fades never overlap inside a very short scene.
        requested = [Transition(type=DEFAULT_TRANSITION.type, duration=canvas.seconds(max(1, math.floor(
            min(DEFAULT_TRANSITION.duration, durations[k] / 2, durations[k + 1] / 2) * canvas.fps + 1e-9))))
            for k in range(len(requested))]
    cuts, incoming = [], 0.0
    for k, cut in enumerate(requested):
        snapped = canvas.seconds(canvas.frames(cut.duration))
        _check_cut(k, cut.model_copy(update={"duration": snapped}), durations, incoming)
        cuts.append(fg.Cut(cut.type, snapped))
        incoming = snapped
    return cuts


# ─── 3. overlays ──────────────────────────────────────────────────────────────────────────────────────
@functools.cache
def ffmpeg_colors() -> frozenset[str]:
    """Colour names FFmpeg knows (``ffmpeg -colors``), lower-cased."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-colors"], capture_output=True, text=True, timeout=30,
                          check=False)
    return frozenset(line.split()[0].lower() for line in done.stdout.splitlines()[1:] if line.split())


def check_window(where: str, start_s: float, end_s: float | None, total_s: float) -> None:
    if start_s >= total_s:
        raise InvalidPayload(f"{where}.start_time: {start_s:g} s is after the end of the video ({total_s:.3f} s)")
    if end_s is not None and end_s <= start_s:
        raise InvalidPayload(f"{where}.end_time: {end_s:g} s must be greater than start_time ({start_s:g} s)")


def check_color(where: str, color: str) -> None:
    if not color.startswith("#") and color.lower() not in ffmpeg_colors():
        raise InvalidPayload(f"{where}.color: {color!r} is not a colour name FFmpeg knows; use a name such as "
                             "'white' or 'yellow', or '#RRGGBB'")


@dataclass
class Layers:
    """Overlay layers in payload order, plus the extra FFmpeg inputs (images) they need."""

    items: list[fg.ImageLayer | fg.TextLayer] = field(default_factory=list)
    image_paths: list[Path] = field(default_factory=list)


def _image_layer(index: int, overlay: ImageOverlay, input_index: int) -> tuple[fg.ImageLayer, Path]:
    info = checked_media(overlay.path, f"overlays[{index}].path", require_video=False)
    layer = fg.ImageLayer(input_index, overlay.position.value, overlay.scale, overlay.opacity,
                          overlay.start_time, overlay.end_time)
    return layer, info.path


def _text_layer(index: int, overlay: TextOverlay, work: Path) -> fg.TextLayer:
    check_color(f"overlays[{index}]", overlay.color)
    textfile = work / f"overlay-{index}.txt"
    text = drawable_text(overlay.text.replace("\r\n", "\n").replace("\r", "\n"))
    # drawtext reads the text from this file with expansion off: nothing in it is ever parsed as syntax.
    textfile.write_text(text, encoding="utf-8")
    return fg.TextLayer(str(textfile), overlay.position.value, overlay.font_size, overlay.color, overlay.box,
                        overlay.opacity, overlay.start_time, overlay.end_time, font_for(text))


def plan_layers(overlays: Sequence[ImageOverlay | TextOverlay], first_input: int, total_s: float,
                work: Path) -> Layers:
    layers = Layers()
    for index, overlay in enumerate(overlays):
        check_window(f"overlays[{index}]", overlay.start_time, overlay.end_time, total_s)
        if isinstance(overlay, ImageOverlay):
            layer, path = _image_layer(index, overlay, first_input + len(layers.image_paths))
            layers.items.append(layer)
            layers.image_paths.append(path)
        else:
            layers.items.append(_text_layer(index, overlay, work))
    return layers


# ─── 4. subtitles ─────────────────────────────────────────────────────────────────────────────────────
def write_subtitles(subtitles: str | list[SubtitleCue] | None, work: Path) -> Path | None:
    """Our own SRT copy of the payload's subtitles (a path inside the media roots, or cues)."""
    if subtitles is None:
        return None
    if isinstance(subtitles, str):
        source = resolve_input(subtitles, field="subtitles")
        with source.open("rb") as handle:  # at most one byte over the limit: read_srt refuses it
            cues = srtfile.read_srt(handle.read(srtfile.MAX_SRT_BYTES + 1))
    else:
        if not subtitles:
            return None
        cues = srtfile.cues_from_payload(subtitles)
    path = work / "subtitles.srt"
    path.write_text(srtfile.write_srt(cues), encoding="utf-8")
    return path


# ─── the graph ────────────────────────────────────────────────────────────────────────────────────────
@dataclass
class RenderPlan:
    canvas: fg.Canvas
    scenes: list[PlannedScene]
    cuts: list[fg.Cut] | None
    total_s: float
    layers: Layers = field(default_factory=Layers)
    subtitles: Path | None = None

    @property
    def inputs(self) -> list[Path]:
        return [s.path for s in self.scenes] + self.layers.image_paths

    @property
    def has_audio(self) -> bool:
        return any(s.has_audio for s in self.scenes)


def input_arguments(plan: RenderPlan) -> list[str]:
    """Scenes trimmed by input seeking (no decoding of what is cut), then overlay images."""
    args: list[str] = []
    for scene in plan.scenes:
        args += (["-ss", fg.num(scene.start_s)] if scene.start_s > 0 else []) + ["-t", fg.num(scene.duration_s)]
        args += input_args(scene.path)
    for image in plan.layers.image_paths:
        args += input_args(image)
    return args


def audio_chains(plan: RenderPlan, output: str) -> list[str]:
    chains, labels = [], []
    for index, scene in enumerate(plan.scenes):
        label = f"a{index}"
        chains.append(fg.scene_audio(index, scene.duration_s, label) if scene.has_audio
                      else fg.silence(scene.duration_s, label))
        labels.append(label)
    return chains + fg.join_audio(labels, plan.cuts, output)


def video_chains(plan: RenderPlan, output: str) -> list[str]:
    chains = [fg.scene_video(i, s.frames, plan.canvas, f"v{i}") for i, s in enumerate(plan.scenes)]
    chains += fg.join_video([f"v{i}" for i in range(len(plan.scenes))], [s.duration_s for s in plan.scenes],
                            plan.cuts, "vjoined")
    last = "vjoined"
    for k, layer in enumerate(plan.layers.items):
        label = f"layer{k}"
        if isinstance(layer, fg.ImageLayer):
            chains += fg.image_overlay(last, layer, plan.canvas, label)
        else:
            chains.append(fg.chain([last], [fg.drawtext(layer, plan.canvas)], label))
        last = label
    finish = [fg.burn_subtitles(str(plan.subtitles), plan.canvas)] if plan.subtitles else []
    chains.append(fg.chain([last], [*finish, fg.filt("format", fg.OUTPUT_PIX_FMT)], output))
    return chains


def render_graph(plan: RenderPlan, loudness_filter: str | None) -> str:
    return fg.graph(video_chains(plan, "vout") + audio_chains(plan, "amixed")
                    + [fg.finish_audio("amixed", plan.total_s, "aout", loudness_filter)])


# ─── 5. loudness ──────────────────────────────────────────────────────────────────────────────────────
_SUMMARY_VALUES = {
    "integrated": re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf) LUFS\s*Threshold:\s*(-?[\d.]+|-inf)"),
    "range": re.compile(r"Loudness range:\s*LRA:\s*(-?[\d.]+)"),
    "peak": re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf)"),
}


def parse_ebur128(lines: Sequence[str]) -> fg.Loudness | None:
    """The ebur128 filter's summary from the end of FFmpeg's output; None when it is missing."""
    text = "\n".join(lines).rsplit("Summary:", 1)[-1]
    found = {key: pattern.search(text) for key, pattern in _SUMMARY_VALUES.items()}
    integrated, lra, peak = found["integrated"], found["range"], found["peak"]
    if integrated is None or lra is None or peak is None:
        return None
    return fg.Loudness(float(integrated.group(1)), float(peak.group(1)), float(lra.group(1)),
                       float(integrated.group(2)))


def measure_loudness(plan: RenderPlan, deadline: Deadline, on_progress: ProgressCallback) -> str | None:
    """The loudnorm filter for the final pass: linear from a measurement, or None for a silent soundtrack."""
    if not plan.has_audio:
        return None
    graph = fg.graph([*audio_chains(plan, "amixed"), fg.chain(["amixed"], [fg.loudness_measure()], "ameasure")])
    # ebur128 prints its summary at info level; run_ffmpeg returns the end of stderr.
    args = ["-loglevel", "info", *input_arguments(plan), "-filter_complex", graph, "-map", "[ameasure]", "-f", "null",
            "-"]
    tail = run_ffmpeg_within(deadline, args, expected_duration_s=plan.total_s, on_progress=on_progress,
                             progress_span=(2, 10), what="loudness measurement")
    measured = parse_ebur128(tail)
    if measured is None:
        return fg.loudnorm_single_pass()
    if not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs <= SILENCE_LUFS:
        return None  # silence stays silence: there is no programme loudness to bring to -16 LUFS
    return fg.loudnorm_apply(measured)


# ─── 6. encode and verify ─────────────────────────────────────────────────────────────────────────────
def output_path(job: RenderJob) -> Path:
    directory = ensure_output_dir(get_settings().render_dir)
    name = job.output_name or f"render-{uuid.uuid4().hex}.mp4"
    if name.startswith("."):
        raise InvalidPayload(f"output_name: {name!r} must not start with '.' (hidden and temporary names)")
    return directory / (name if name.lower().endswith(".mp4") else f"{name}.mp4")


@dataclass(frozen=True)
class Encoding:
    decision: EncoderDecision
    preset: str
    rate: RateControl


def choose_encoding(fmt: RenderOutputFormat, use_gpu: bool) -> Encoding:
    """Encoder (NVENC when asked for and working), preset and rate control, validated before any work."""
    software = SOFTWARE_ENCODERS[fmt.codec]
    rate = rate_control(software, fmt.crf, fmt.bitrate)
    preset = check_preset(software, fmt.preset)
    return Encoding(choose_encoder(fmt.codec, software, use_gpu), preset, rate)


def encode_arguments(plan: RenderPlan, graph: str, encoding: Encoding, target: Path) -> list[str]:
    decision = encoding.decision
    gpu = decision.gpu.cuda_ordinal if decision.gpu else None
    return [*input_arguments(plan), "-filter_complex", graph, "-map", "[vout]", "-map", "[aout]",
            *video_args(decision.encoder, encoding.preset, encoding.rate, gpu=gpu), "-r", fg.num(plan.canvas.fps),
            *AUDIO_ARGS, "-movflags", "+faststart", "-f", "mp4", str(target)]


def verify_render(path: Path, plan: RenderPlan) -> MediaInfo:
    """ffprobe the written file before it is reported: size, audio, and duration to about a frame."""
    try:
        info = probe(path, require_video=True, require_audio=True)
    except MediaUnreadable as exc:
        raise ProcessingFailed(f"render wrote an unreadable file: {exc}") from None
    problems = []
    if (info.width, info.height) != (plan.canvas.width, plan.canvas.height):
        problems.append(f"size {info.width}x{info.height}, expected {plan.canvas.width}x{plan.canvas.height}")
    tolerance = 2 * plan.canvas.frame_s + 0.05
    if abs(info.duration - plan.total_s) > tolerance:
        problems.append(f"duration {info.duration:.3f} s, expected {plan.total_s:.3f} s")
    if problems:
        raise ProcessingFailed("render output failed verification: " + "; ".join(problems))
    return info


def plan_render(job: RenderJob, work: Path) -> RenderPlan:
    canvas = canvas_for(job.output_format)
    scenes = plan_scenes(job.scenes, canvas)
    durations = [s.duration_s for s in scenes]
    cuts = plan_cuts(job.transitions, durations, canvas)
    total = fg.output_duration(durations, cuts or [])
    plan = RenderPlan(canvas, scenes, cuts, total)
    plan.layers = plan_layers(job.overlays, len(scenes), total, work)
    plan.subtitles = write_subtitles(job.subtitles, work)
    return plan


def render_video(job: RenderJob, on_progress: ProgressCallback = no_progress) -> RenderResult:
    """Render ``job`` into RENDER_DIR; raise a PermanentError naming the field for bad input."""
    deadline = Deadline(get_settings().render_timeout, "RENDER_TIMEOUT")
    on_progress(0, "checking scenes")
    encoding = choose_encoding(job.output_format, job.use_gpu)
    final = output_path(job)
    with scratch_dir("render") as work:
        plan = plan_render(job, work)
        with in_use(*plan.inputs):
            loudness = measure_loudness(plan, deadline, on_progress) if job.normalize_audio else None
            graph = render_graph(plan, loudness)
            with atomic_output(final) as partial, in_use(partial):
                run_ffmpeg_within(deadline, encode_arguments(plan, graph, encoding, partial), what="render",
                                  expected_duration_s=plan.total_s, on_progress=on_progress, progress_span=(10, 98),
                                  env=encoding.decision.env)
                on_progress(99, "verifying the output")
                info = verify_render(partial, plan)
    return render_result(job, final, info, encoding.decision)


def render_result(job: RenderJob, final: Path, info: MediaInfo, decision: EncoderDecision) -> RenderResult:
    return RenderResult(
        output_path=str(final), file_size=final.stat().st_size, duration=info.duration, width=info.width,
        height=info.height, fps=round(info.fps, 3), codec=job.output_format.codec, encoder=decision.encoder,
        used_gpu=decision.used_gpu, gpu_id=decision.gpu.index if decision.gpu else None,
        gpu_fallback_reason=decision.fallback_reason, timestamp=utcnow(),
    )
