"""Codec × container matrix, rate control, presets and per-encoder arguments, all before FFmpeg runs; the matrix
itself is checked against what this FFmpeg actually muxes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from geminivideo.errors import InvalidPayload, UnsupportedOption
from geminivideo.video import encoders as enc


def _ffmpeg_muxes(codec: str, container: str, out: Path) -> bool:
    """Encode four frames with the codec's software encoder into the container (with the muxer options the
    transcode uses); True when FFmpeg wrote a file whose video stream ffprobe reads as that codec."""
    encoder = enc.software_encoder(codec)
    rate = enc.rate_control(encoder, None, None)
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=4:duration=1",
         "-frames:v", "4", *enc.video_args(encoder, "ultrafast", rate), *enc.container_args(container, codec),
         str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return False
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                            "-of", "json", str(out)], capture_output=True, text=True, timeout=30, check=True)
    return bool(json.loads(probe.stdout)["streams"][0]["codec_name"] == enc.PROBE_NAMES[codec])


@pytest.mark.parametrize("container", sorted(enc.MUXERS))
@pytest.mark.parametrize("codec", sorted(enc.PROBE_NAMES))
def test_the_pair_table_is_what_ffmpeg_muxes(codec: str, container: str, tmp_path: Path) -> None:
    allowed = codec in enc.CONTAINER_CODECS[container]
    assert _ffmpeg_muxes(codec, container, tmp_path / f"out.{container}") is allowed, (
        f"CONTAINER_CODECS says {codec} in {container} is {'allowed' if allowed else 'refused'}; FFmpeg disagrees")
    if allowed:
        enc.check_pair(codec, container)
    else:
        with pytest.raises(UnsupportedOption):
            enc.check_pair(codec, container)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_webm_refuses_h26x_listing_the_choices(codec: str) -> None:
    with pytest.raises(UnsupportedOption) as caught:
        enc.check_pair(codec, "webm")
    assert str(caught.value) == (f"output_format: codec {codec!r} cannot go in container 'webm'; webm takes vp9, av1, "
                                 f"and {codec} goes in mp4, mkv")


def test_audio_follows_the_container() -> None:
    assert enc.audio_codec_for("mp4", "av1") == "aac"
    assert enc.audio_codec_for("webm", "vp9") == "opus"
    assert enc.audio_codec_for("mkv", "h264") == "aac"
    assert enc.audio_codec_for("mkv", "vp9") == "opus"
    assert enc.audio_args("opus")[:2] == ["-c:a", "libopus"] and "48000" in enc.audio_args("opus")


@pytest.mark.parametrize(("text", "bps"), [("2500k", 2_500_000), ("2.5M", 2_500_000), ("800000", 800_000),
                                           ("16k", 16_000), ("200m", 200_000_000)])
def test_bitrates(text: str, bps: int) -> None:
    assert enc.parse_bitrate(text) == bps


@pytest.mark.parametrize(("text", "problem"), [("abc", "is not a bitrate"), ("5", "outside"), ("300M", "outside")])
def test_bad_bitrates_name_the_field(text: str, problem: str) -> None:
    with pytest.raises(InvalidPayload, match=rf"^output_format\.bitrate: .*{problem}"):
        enc.parse_bitrate(text)


def test_rate_control_defaults_ranges_and_exclusivity() -> None:
    assert enc.rate_control("libx264", None, None) == enc.RateControl(23, None)
    assert enc.rate_control("libsvtav1", None, None) == enc.RateControl(35, None)
    assert enc.rate_control("libvpx-vp9", 50, None) == enc.RateControl(50, None)
    assert enc.rate_control("libx265", None, "1M") == enc.RateControl(None, 1_000_000)
    with pytest.raises(InvalidPayload, match=r"output_format\.crf: 52 is outside 0–51 for libx264"):
        enc.rate_control("libx264", 52, None)
    with pytest.raises(InvalidPayload, match=r"output_format\.crf: 0 is outside 1–63 for libsvtav1"):
        enc.rate_control("libsvtav1", 0, None)
    with pytest.raises(InvalidPayload, match="not both"):
        enc.rate_control("libx264", 20, "1M")


def test_presets() -> None:
    assert enc.check_preset("libx264", None) == "veryfast"
    assert enc.check_preset("libsvtav1", "8") == "8"
    with pytest.raises(InvalidPayload, match=r"output_format\.preset: '8' is not a preset for libx264; choose one of"):
        enc.check_preset("libx264", "8")
    with pytest.raises(InvalidPayload, match="or a number 0-13"):
        enc.check_preset("libsvtav1", "14")


def test_encoder_arguments() -> None:
    crf, rate = enc.RateControl(23, None), enc.RateControl(None, 2_000_000)
    assert enc.video_args("libx264", "fast", crf) == ["-c:v", "libx264", "-preset", "fast", "-crf", "23"]
    assert enc.video_args("libx264", "fast", rate)[4:] == ["-b:v", "2000000", "-maxrate", "3000000",
                                                          "-bufsize", "4000000"]
    assert enc.video_args("libvpx-vp9", "ultrafast", crf) == [
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-crf", "23", "-b:v", "0"]
    assert enc.video_args("libsvtav1", "veryfast", rate) == ["-c:v", "libsvtav1", "-preset", "10", "-b:v", "2000000"]
    assert enc.video_args("h264_nvenc", "medium", crf, gpu=1) == [
        "-c:v", "h264_nvenc", "-preset", "p5", "-rc", "vbr", "-gpu", "1", "-cq", "23", "-b:v", "0"]
    assert "-x265-params" in enc.video_args("libx265", "medium", crf)


def test_container_arguments() -> None:
    assert enc.container_args("mp4", "h265") == ["-f", "mp4", "-movflags", "+faststart", "-tag:v", "hvc1"]
    assert enc.container_args("mkv", "h264") == ["-f", "matroska"]


def test_av1_prefers_svt_then_aom() -> None:
    assert enc.software_encoder("av1", frozenset({"libaom-av1", "libsvtav1"})) == "libsvtav1"
    assert enc.software_encoder("av1", frozenset({"libaom-av1"})) == "libaom-av1"
    with pytest.raises(UnsupportedOption, match="no encoder for av1"):
        enc.software_encoder("av1", frozenset({"libx264"}))
