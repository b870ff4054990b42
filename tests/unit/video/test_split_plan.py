"""Split-and-stitch planning: when a transcode splits, how long its parts are, the concat script that
places each part at its source start, and the seam check that catches a part placed elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from geminivideo.contracts import TranscodeFormat
from geminivideo.errors import InvalidPayload
from geminivideo.video.ffmpeg import MediaInfo
from geminivideo.video.split_transcode import (
    Part,
    SplitPlan,
    _seam_problems,
    concat_list,
    part_length_s,
    part_task_id,
    scratch_path,
    wants_split,
)
from tests.support.env import applied


def _info(duration_s: float) -> MediaInfo:
    return MediaInfo(path=Path("/x.mp4"), format_name="mp4", duration=duration_s, has_video=True, has_audio=True)


def _plan(starts: list[float], frames: list[int]) -> SplitPlan:
    return SplitPlan(job_id="job-1", input_path="/m/in.mp4", output_format=TranscodeFormat(), output_path="/r/o.mp4",
                     scratch="/t/split-job-1", width=320, height=240, duration_s=sum(frames) / 25,
                     frame_duration_s=0.04, video_offset_s=0.0, has_audio=True, frames=sum(frames),
                     parts=[Part(index=i, start_s=s, frames=n)
                            for i, (s, n) in enumerate(zip(starts, frames, strict=True))])


def test_only_inputs_longer_than_split_min_s_split() -> None:
    with applied({"SPLIT_MIN_S": "300", "SPLIT_SEGMENT_S": "60"}):
        assert not wants_split(_info(300))
        assert wants_split(_info(301))
    with applied({"SPLIT_MIN_S": "3", "SPLIT_SEGMENT_S": "60"}):
        assert not wants_split(_info(80))  # one 60 s part and a stub: not worth a second task


def test_parts_stretch_so_no_input_makes_more_than_the_maximum() -> None:
    with applied({"SPLIT_SEGMENT_S": "60", "SPLIT_MAX_SEGMENTS": "10"}):
        assert part_length_s(600) == 60
        assert part_length_s(3600) == 360


def test_concat_script_places_each_part_at_its_source_start() -> None:
    script = concat_list(_plan([0.0, 2.0, 4.04], [50, 51, 30]))
    assert script.splitlines() == ["ffconcat version 1.0", "file part0000.mkv", "duration 2.000000",
                                   "file part0001.mkv", "duration 2.040000", "file part0002.mkv"]


def test_seam_check_finds_a_part_that_starts_a_frame_late() -> None:
    plan = _plan([0.0, 2.0], [50, 50])
    exact = [i * 0.04 for i in range(100)]
    assert _seam_problems(exact, plan) == []
    late = exact[:50] + [t + 0.04 for t in exact[50:]]
    assert _seam_problems(late, plan) == ["part 1 starts at 2.040 s, in the input at 2.000 s"]


def test_part_ids_derive_from_the_job_and_scratch_names_are_safe() -> None:
    assert part_task_id("abc-1", 3) == "abc-1-part0003"
    assert scratch_path("abc-1").name == "split-abc-1"
    with pytest.raises(InvalidPayload, match="cannot name a scratch folder"):
        scratch_path("../../etc")


@pytest.mark.parametrize(("input_path", "output_url", "env_output", "expected"), [
    ("/m/in.mp4", None, None, None),
    ("s3://media-in/clips/in.mp4", None, None, "s3://media-in/clips/split-job-1/"),
    ("s3://media-in/in.mp4", None, None, "s3://media-in/split-job-1/"),
    ("/m/in.mp4", "s3://media-out/jobs/r1/web.webm", None, "s3://media-out/jobs/r1/split-job-1/"),
    ("s3://media-in/in.mp4", "s3://media-out/jobs/r1/", None, "s3://media-out/jobs/r1/split-job-1/"),
    ("s3://media-in/in.mp4", None, "s3://media-out/jobs/", "s3://media-out/jobs/split-job-1/"),
], ids=["local", "s3-input", "s3-input-at-root", "exact-output", "output-prefix", "OUTPUT_URL"])
def test_store_jobs_keep_their_parts_beside_their_output(input_path: str, output_url: str | None,
                                                         env_output: str | None, expected: str | None) -> None:
    from geminivideo.contracts import TranscodeJob
    from geminivideo.video.split_store import scratch_prefix

    job = TranscodeJob(input_path=input_path, output_url=output_url)
    with applied({"STORAGE_BUCKETS": "media-in,media-out", "OUTPUT_URL": env_output or ""}):
        found = scratch_prefix(job, "job-1")
    assert (str(found) if found else None) == expected
