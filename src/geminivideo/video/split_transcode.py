"""Split-and-stitch transcoding: one long input encoded as several parts by several workers.

The pipeline (the Celery wiring is in ``split_tasks.py``; this module is plain code):

1. ``prepare``: validate the options, probe the input; if it is longer than SPLIT_MIN_S, cut its video
   stream at keyframes into parts of about SPLIT_SEGMENT_S by stream copy (FFmpeg's segment muxer; no
   decoding, every packet lands in exactly one part) into ``TEMP_DIR/split-<job id>/``.
2. ``encode_part``: each part is encoded on its own (by any worker: of any host for a store job, of the hosts
   sharing TEMP_DIR for a local one), video only, with the same filter and encoder options a single encode
   would use; the part's frame count is checked.
3. ``stitch``: the encoded parts are joined by stream copy (concat demuxer, each part placed at its source
   start time, so seams land exactly where the source had them), and the audio is encoded once over the
   whole input in the same FFmpeg run, so there is no gap or click at a seam. The output is verified
   (frame count equal to the input's, duration within one frame, every seam and the audio start where the
   source has them) before its atomic rename; then the scratch folder is removed.

A job whose media are ``s3://`` (its input, its ``output_url`` or OUTPUT_URL) shares no disk between its tasks:
the splitter uploads the parts under the job's ``split-<job id>/`` prefix in the store, each part task downloads
its source part and uploads its encoded part, and the stitcher downloads the encoded parts (and the input, for
its audio) into its own folder (``split_store``). A local job's parts stay in its one scratch folder, held in
the in-use registry under the job's id from the split to the end of the job.

Progress of the whole job goes under the job's own task id: splitting 0–5 %, parts 5–95 % (weighted by
frames, each part's share only grows, so a retried part does not move the bar back), stitching 95–100 %.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel

from geminivideo.config import get_settings
from geminivideo.contracts import TaskStatus, TranscodeFormat, TranscodeJob, TranscodeResult, utcnow
from geminivideo.errors import Cancelled, GeminiVideoError, InvalidPayload, MediaUnreadable, ProcessingFailed
from geminivideo.leases import fencing
from geminivideo.progress import ProgressCallback, ProgressPublisher, no_progress, read_status
from geminivideo.storage.uri import ObjectUri
from geminivideo.video import encoders, split_store
from geminivideo.video.ffmpeg import (
    PROTOCOL_WHITELIST,
    MediaInfo,
    atomic_output,
    input_args,
    probe_json,
)
from geminivideo.video.housekeeping.inuse import hold, in_use, release
from geminivideo.video.media import ensure_output_dir, resolve_input
from geminivideo.video.transcode import (
    TranscodePlan,
    output_path,
    plan_encoding,
    verify_transcode,
    video_filter,
)
from geminivideo.video.workspace import Deadline, checked_media, run_ffmpeg_within

log = logging.getLogger(__name__)

SCRATCH_PREFIX = split_store.SCRATCH_PREFIX
PART_FORMAT = "matroska"  # carries all four codecs; the parts never leave the scratch folder
PLAN_TTL_S = 24 * 3600
SPLIT_SPAN = (0.0, 5.0)
PARTS_SPAN = (5.0, 95.0)
STITCH_SPAN = (95.0, 99.0)
_JOB_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

# HSET a part's fraction only if larger (a retried part starts again from 0), then return every fraction.
_PART_PROGRESS_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[1])
"""


class Part(BaseModel):
    """One keyframe-aligned piece of the source's video stream."""

    index: int
    start_s: float  # where it starts in the source (seconds from the source's first video packet)
    frames: int


class SplitPlan(BaseModel):
    """Everything the part and stitch tasks need; travels in their messages as JSON."""

    job_id: str
    input_path: str
    output_format: TranscodeFormat
    output_path: str
    scratch: str
    width: int
    height: int
    duration_s: float  # of the source's video stream
    frame_duration_s: float
    video_offset_s: float  # how far the source's video starts after its earliest stream
    has_audio: bool
    frames: int
    parts: list[Part]
    source: str = ""  # the input as the job named it (a path or an s3:// URI); input_path is the splitter's copy
    store: str | None = None  # s3:// prefix holding the parts when the job's media are in the object store
    output_url: str | None = None  # the job's own output_url (the stitch publishes there, else to OUTPUT_URL)

    def job(self) -> TranscodeJob:
        return TranscodeJob(input_path=self.source or self.input_path, output_format=self.output_format,
                            output_url=self.output_url)

    def source_info(self) -> MediaInfo:
        return MediaInfo(path=Path(self.input_path), format_name="", duration=self.duration_s, has_video=True,
                         has_audio=self.has_audio, width=self.width, height=self.height)

    def part_path(self, index: int) -> Path:
        return Path(self.scratch) / source_name(index)

    def encoded_path(self, index: int) -> Path:
        return Path(self.scratch) / encoded_name(index)

    def store_prefix(self) -> ObjectUri | None:
        return split_store.prefix_of(self.store) if self.store else None


# ─── names ─────────────────────────────────────────────────────────────────────────────────────────────
def source_name(index: int) -> str:
    return f"source{index:04d}.mkv"


def encoded_name(index: int) -> str:
    return f"part{index:04d}.mkv"


def part_task_id(job_id: str, index: int) -> str:
    """Part task ids derive from the job's, so cancelling the job can revoke them without a lookup."""
    return f"{job_id}-part{index:04d}"


def _plan_key(job_id: str) -> str:
    return f"split_transcode:{job_id}"


def _progress_key(job_id: str) -> str:
    return f"split_progress:{job_id}"


def scratch_path(job_id: str) -> Path:
    if not _JOB_ID.match(job_id):
        raise InvalidPayload(f"task id {job_id!r} cannot name a scratch folder (letters, digits and '-' only)")
    return get_settings().temp_dir / f"{SCRATCH_PREFIX}{job_id}"


# ─── deciding and splitting ────────────────────────────────────────────────────────────────────────────
def part_length_s(duration_s: float) -> float:
    """SPLIT_SEGMENT_S, stretched so that no input makes more than SPLIT_MAX_SEGMENTS parts."""
    settings = get_settings()
    return max(settings.split_segment_s, duration_s / settings.split_max_segments)


def wants_split(info: MediaInfo) -> bool:
    settings = get_settings()
    return info.duration > settings.split_min_s and info.duration > 1.5 * part_length_s(info.duration)


def _video_stream(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in data.get("streams", []) if s.get("codec_type") == "video"
                and not s.get("disposition", {}).get("attached_pic"))


def packet_times(path: Path, stream: str = "v:0", *, timeout_s: float = 300) -> list[float]:
    """Presentation times of every packet of one stream, in order (demuxing only: fast even for 1080p)."""
    cmd = ["ffprobe", "-v", "error", "-protocol_whitelist", PROTOCOL_WHITELIST, "-select_streams", stream,
           "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise MediaUnreadable(f"{path}: cannot list its packets ({done.stderr.strip()[-300:]})")
    return sorted(float(line.split(",")[0]) for line in done.stdout.split() if line and line[0] != "N")


def _split_video(info: MediaInfo, scratch: Path, length_s: float, deadline: Deadline,
                 on_progress: ProgressCallback) -> list[float]:
    """Cut the video stream at the first keyframe after each multiple of ``length_s``; return part starts."""
    listing = scratch / "parts.csv"
    run_ffmpeg_within(deadline, [
        *input_args(info.path), "-map", "0:v:0", "-c", "copy", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-f", "segment", "-segment_time", f"{length_s:.3f}", "-reset_timestamps", "1",
        "-segment_format", PART_FORMAT, "-segment_list", str(listing), "-segment_list_type", "csv",
        str(scratch / "source%04d.mkv"),
    ], what="split", expected_duration_s=info.duration, on_progress=on_progress, progress_span=SPLIT_SPAN)
    rows = [line.split(",") for line in listing.read_text().splitlines() if line.strip()]
    return [float(row[1]) for row in rows]


def _source_facts(info: MediaInfo) -> tuple[float, float, float]:
    """(video start, earliest stream start, frame duration) of the source, in seconds."""
    data = probe_json(info.path)
    video = _video_stream(data)
    video_start = float(video.get("start_time") or 0.0)
    starts = [float(s["start_time"]) for s in data.get("streams", []) if s.get("start_time") not in (None, "N/A")
              and s.get("codec_type") in ("video", "audio")]
    frame_s = 1.0 / info.fps if info.fps else 1.0 / 25
    return video_start, min([video_start, *starts]), frame_s


def prepare(job: TranscodeJob, job_id: str, client: redis.Redis,
            on_progress: ProgressCallback = no_progress) -> SplitPlan | None:
    """Split the input into parts when it is long enough; None means: encode it in one piece."""
    deadline = Deadline(get_settings().transcode_timeout, "TRANSCODE_TIMEOUT")
    plan_encoding(job.output_format)  # refuse bad options before any work
    info = checked_media(job.input_path, "input_path")
    if not wants_split(info):
        return None
    store = split_store.scratch_prefix(job, job_id)
    if store is not None:  # before any part goes up: a splitter killed mid-upload leaves them where cleanup looks
        split_store.remember_base(client, store)
    scratch = scratch_path(job_id)
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        with in_use(scratch):
            plan = _build_plan(job, job_id, info, scratch, deadline, on_progress)
            if plan is not None and store is not None:
                plan = _store_sources(plan, store)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if plan is None or store is not None:  # a store job's parts are in the store now
        shutil.rmtree(scratch, ignore_errors=True)
    if plan is None:
        return None
    if store is None:  # the parts wait in the folder for their tasks: cleanup must leave it until the job ends
        hold(scratch, holder=job_id, lease_s=PLAN_TTL_S)
    record = {"parts": len(plan.parts), "scratch": plan.scratch, "store": plan.store}
    client.set(_plan_key(job_id), json.dumps(record), ex=PLAN_TTL_S)
    if job_cancelled(client, job_id):  # cancelled while splitting: its parts were not known to the canceller
        discard(client, job_id)
        raise Cancelled(f"transcode {job_id} was cancelled while its input was being split")
    return plan


def _store_sources(plan: SplitPlan, store: ObjectUri) -> SplitPlan:
    """Upload the split parts under the job's prefix (a failed upload leaves nothing behind)."""
    try:
        split_store.upload_all([plan.part_path(p.index) for p in plan.parts], store, task_id=plan.job_id)
    except BaseException:
        with contextlib.suppress(GeminiVideoError):
            split_store.delete(store)
        raise
    return plan.model_copy(update={"store": str(store)})


def _build_plan(job: TranscodeJob, job_id: str, info: MediaInfo, scratch: Path, deadline: Deadline,
                on_progress: ProgressCallback) -> SplitPlan | None:
    starts = _split_video(info, scratch, part_length_s(info.duration), deadline, on_progress)
    if len(starts) < 2:  # too few keyframes to cut: one part is just a slower single encode
        return None
    video_start, earliest, frame_s = _source_facts(info)
    times = packet_times(info.path)
    frames = [len(packet_times(scratch / f"source{i:04d}.mkv")) for i in range(len(starts))]
    if sum(frames) != len(times):
        raise ProcessingFailed(f"split lost frames: the parts hold {sum(frames)} video frames, the input "
                               f"{len(times)}")
    plan_fmt = plan_encoding(job.output_format)
    duration = (times[-1] - times[0] + frame_s) if times else info.duration
    return SplitPlan(
        job_id=job_id, input_path=str(info.path), source=job.input_path, output_url=job.output_url,
        output_format=job.output_format,
        output_path=str(output_path(info, plan_fmt)), scratch=str(scratch), width=info.width, height=info.height,
        duration_s=duration, frame_duration_s=frame_s, video_offset_s=max(0.0, video_start - earliest),
        has_audio=info.has_audio, frames=len(times),
        parts=[Part(index=i, start_s=start, frames=n) for i, (start, n) in enumerate(zip(starts, frames, strict=True))],
    )


# ─── parts ─────────────────────────────────────────────────────────────────────────────────────────────
def part_arguments(plan: SplitPlan, fmt_plan: TranscodePlan, index: int, target: Path) -> list[str]:
    """The single encode's video options applied to one part, video only, into Matroska."""
    return [*input_args(plan.part_path(index)), "-map", "0:v:0",
            "-vf", video_filter(plan.output_format, plan.source_info()),
            *encoders.video_args(fmt_plan.encoder, fmt_plan.preset, fmt_plan.rate), "-an", "-sn", "-dn",
            "-map_metadata", "-1", "-f", PART_FORMAT, str(target)]


def encode_part(plan: SplitPlan, index: int, client: redis.Redis) -> dict[str, Any]:
    """Encode part ``index``; its frame count must equal its source's. Safe to run again (a retry)."""
    if job_cancelled(client, plan.job_id):
        raise Cancelled(f"transcode {plan.job_id} was cancelled; part {index} not encoded")
    store = plan.store_prefix()
    if store is None:
        return _encode_part(plan, index, client)
    with split_store.task_folder(plan.job_id, f"part{index:04d}") as folder:
        local = plan.model_copy(update={"scratch": str(folder)})
        split_store.download_all([source_name(index)], store, folder)
        done = _encode_part(local, index, client)
        if job_cancelled(client, plan.job_id):  # cancelled while encoding: nobody will stitch this part
            raise Cancelled(f"transcode {plan.job_id} was cancelled; part {index} not stored")
        fencing.check_current()  # only the attempt that holds the part may store it
        split_store.upload_all([local.encoded_path(index)], store, task_id=part_task_id(plan.job_id, index))
        return done


def _encode_part(plan: SplitPlan, index: int, client: redis.Redis) -> dict[str, Any]:
    deadline = Deadline(get_settings().transcode_timeout, "TRANSCODE_TIMEOUT")
    part = plan.parts[index]
    source = plan.part_path(index)
    if not source.is_file():
        raise ProcessingFailed(f"part {index} of transcode {plan.job_id} is missing from {plan.scratch} (TEMP_DIR "
                               "must be shared by every transcode worker of a split job)")
    fmt_plan = plan_encoding(plan.output_format)
    report = _part_reporter(plan, index, client)
    with in_use(Path(plan.scratch)), atomic_output(plan.encoded_path(index)) as partial:
        run_ffmpeg_within(deadline, part_arguments(plan, fmt_plan, index, partial), what=f"part {index}",
                          expected_duration_s=part.frames * plan.frame_duration_s, on_progress=report,
                          progress_span=(0, 100))
        written = len(packet_times(partial))
        if written != part.frames:
            raise ProcessingFailed(f"part {index} encoded {written} frames, its source has {part.frames}")
    report(100, f"part {index} done")
    return {"index": index, "frames": part.frames}


def _part_reporter(plan: SplitPlan, index: int, client: redis.Redis) -> ProgressCallback:
    """Turn one part's progress into the job's: the frame-weighted share of every part done so far."""
    publisher = ProgressPublisher(client, plan.job_id)
    script = client.register_script(_PART_PROGRESS_LUA)
    low, high = PARTS_SPAN

    def report(percent: float, _message: str) -> None:
        try:
            pairs = script(keys=[_progress_key(plan.job_id)], args=[index, f"{percent / 100:.4f}", PLAN_TTL_S])
        except redis.RedisError:
            return  # progress is advisory
        fractions = {int(pairs[i]): float(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        done = sum(fractions.get(p.index, 0.0) * p.frames for p in plan.parts) / max(1, plan.frames)
        finished = sum(1 for value in fractions.values() if value >= 1.0)
        publisher.processing(low + (high - low) * done, f"encoding {len(plan.parts)} parts: {finished} done")

    return report


# ─── stitching ─────────────────────────────────────────────────────────────────────────────────────────
def concat_list(plan: SplitPlan) -> str:
    """Concat demuxer script: each part placed at its source start (``duration`` = distance to the next)."""
    lines = ["ffconcat version 1.0"]
    for part, following in zip(plan.parts, [*plan.parts[1:], None], strict=True):
        lines.append(f"file {plan.encoded_path(part.index).name}")
        if following is not None:
            lines.append(f"duration {following.start_s - part.start_s:.6f}")
    return "\n".join(lines) + "\n"


def stitch_arguments(plan: SplitPlan, fmt_plan: TranscodePlan, listing: Path, target: Path) -> list[str]:
    # The parts are our own files: the concat demuxer may open them (relative names, safe mode on), nothing else.
    video_in = ["-protocol_whitelist", PROTOCOL_WHITELIST, "-format_whitelist", "concat,matroska,webm",
                "-itsoffset", f"{plan.video_offset_s:.6f}", "-f", "concat", "-i", str(listing)]
    audio = ["-map", "1:a:0", *encoders.audio_args(fmt_plan.audio_codec)] if plan.has_audio else ["-an"]
    source_in = input_args(plan.input_path) if plan.has_audio else []
    return [*video_in, *source_in, "-map", "0:v:0", "-c:v", "copy", *audio, "-sn", "-dn", "-map_metadata", "-1",
            *encoders.container_args(fmt_plan.container, fmt_plan.codec), str(target)]


def _seam_problems(times: list[float], plan: SplitPlan) -> list[str]:
    """Each part's first frame must sit where the source had it (half a frame of rounding allowed)."""
    problems, first = [], 0
    for part in plan.parts:
        seam = times[first] - times[0]
        if abs(seam - (part.start_s - plan.parts[0].start_s)) > plan.frame_duration_s / 2:
            problems.append(f"part {part.index} starts at {seam:.3f} s, in the input at {part.start_s:.3f} s")
        first += part.frames
    return problems


def verify_stitched(path: Path, plan: SplitPlan) -> None:
    """Frame count equal, duration within a frame, each seam (and the audio start) where the source has it."""
    times = packet_times(path)
    frame = plan.frame_duration_s
    problems = []
    if len(times) != plan.frames:
        problems.append(f"{len(times)} video frames, the input has {plan.frames}")
    else:
        duration = times[-1] - times[0] + frame
        if abs(duration - plan.duration_s) > frame:
            problems.append(f"video lasts {duration:.3f} s, the input {plan.duration_s:.3f} s")
        problems += _seam_problems(times, plan)
        if plan.has_audio:
            audio = packet_times(path, "a:0")
            offset = times[0] - (audio[0] if audio else times[0])
            if abs(offset - plan.video_offset_s) > frame:
                problems.append(f"video starts {offset:.3f} s after the audio, in the input "
                                f"{plan.video_offset_s:.3f} s")
    if problems:
        raise ProcessingFailed("stitched transcode failed verification: " + "; ".join(problems))


def stitch(plan: SplitPlan, client: redis.Redis, on_progress: ProgressCallback = no_progress) -> TranscodeResult:
    """Join the encoded parts, encode the audio once, verify, rename into place; remove the scratch folder.

    A store job's parts are fetched into a folder of this task's; its prefix stays until the caller has
    published the output (``discard`` then), so a stitch retried after a failed upload finds its parts again.
    """
    store = plan.store_prefix()
    if store is None:
        try:
            return _stitch(plan, on_progress)
        finally:
            discard(client, plan.job_id)
    with split_store.task_folder(plan.job_id, "stitch") as folder:
        split_store.download_all([encoded_name(p.index) for p in plan.parts], store, folder)
        source = resolve_input(plan.source, field="input_path") if plan.has_audio else Path(plan.input_path)
        final = ensure_output_dir(get_settings().render_dir) / Path(plan.output_path).name  # this host's folder
        local = plan.model_copy(update={"scratch": str(folder), "input_path": str(source), "output_path": str(final)})
        result = _stitch(local, on_progress)
    return result.model_copy(update={"input_path": plan.source})


def _stitch(plan: SplitPlan, on_progress: ProgressCallback) -> TranscodeResult:
    deadline = Deadline(get_settings().transcode_timeout, "TRANSCODE_TIMEOUT")
    fmt_plan = plan_encoding(plan.output_format)
    scratch = Path(plan.scratch)
    missing = [p.index for p in plan.parts if not plan.encoded_path(p.index).is_file()]
    if missing:
        raise ProcessingFailed(f"transcode {plan.job_id}: encoded parts {missing} are missing from {scratch}")
    listing = scratch / "parts.ffconcat"
    listing.write_text(concat_list(plan))
    final = Path(plan.output_path)
    on_progress(STITCH_SPAN[0], f"joining {len(plan.parts)} parts and encoding the audio")
    with in_use(scratch), in_use(Path(plan.input_path)), atomic_output(final) as partial, in_use(partial):
        run_ffmpeg_within(deadline, stitch_arguments(plan, fmt_plan, listing, partial), what="stitch",
                          expected_duration_s=plan.duration_s, on_progress=on_progress, progress_span=STITCH_SPAN)
        on_progress(STITCH_SPAN[1], "verifying the output")
        verify_stitched(partial, plan)
        out = verify_transcode(partial, plan.source_info(), plan.output_format, fmt_plan)
    return TranscodeResult(
        output_path=str(final), input_path=plan.input_path, file_size=final.stat().st_size, duration=out.duration,
        codec=fmt_plan.codec, container=fmt_plan.container, width=out.width, height=out.height,
        audio_codec=out.audio_codec, encoder=fmt_plan.encoder, timestamp=utcnow(), parts=len(plan.parts),
    )


# ─── cancelling and cleaning up ────────────────────────────────────────────────────────────────────────
def job_cancelled(client: redis.Redis, job_id: str) -> bool:
    with contextlib.suppress(redis.RedisError, ValueError):
        status = read_status(client, job_id)
        return status is not None and status.status is TaskStatus.CANCELLED
    return False


def _record(client: redis.Redis, job_id: str) -> dict[str, Any]:
    raw = client.get(_plan_key(job_id))
    return dict(json.loads(raw)) if raw else {}


def part_ids(client: redis.Redis, job_id: str) -> list[str]:
    """The part task ids of a split job (empty for a job that was not split)."""
    count = int(_record(client, job_id).get("parts", 0))
    return [part_task_id(job_id, i) for i in range(count)]


def is_live(client: redis.Redis, job_id: str) -> bool:
    """Whether a split job is still running (its plan record exists): its parts must stay."""
    return bool(client.exists(_plan_key(job_id)))


def discard(client: redis.Redis, job_id: str) -> None:
    """Remove a split job's parts (its prefix in the store, its scratch folder on this host) and its keys."""
    record: dict[str, Any] = {}
    with contextlib.suppress(redis.RedisError, ValueError):
        record = _record(client, job_id)
    if record.get("store"):
        try:
            split_store.delete(split_store.prefix_of(str(record["store"])))
        except GeminiVideoError as exc:  # the daily cleanup deletes it once the job's record is gone
            log.warning("transcode %s: could not delete its parts in the store: %s", job_id, exc)
    scratch = scratch_path(job_id)
    shutil.rmtree(scratch, ignore_errors=True)
    release(scratch, holder=job_id)
    with contextlib.suppress(redis.RedisError):
        client.delete(_plan_key(job_id), _progress_key(job_id))
