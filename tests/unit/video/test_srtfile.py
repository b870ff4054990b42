"""SRT read and write: lenient reading, strict writing, no cue smuggled in through blank lines."""

from __future__ import annotations

import pytest

from geminivideo.errors import InvalidPayload
from geminivideo.video.render import srtfile
from geminivideo.video.render.srtfile import Cue


def test_reads_common_variants() -> None:
    data = ("\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\nHello\r\nworld\r\n\r\n"
            "00:00:03.2 --> 00:00:04.000\r\nNo number\r\n")
    assert srtfile.read_srt(data.encode()) == [Cue(1.0, 2.5, "Hello\nworld"), Cue(3.2, 4.0, "No number")]


def test_writes_numbered_cues_in_order() -> None:
    text = srtfile.write_srt([Cue(3725.5, 3726.0, "b"), Cue(0.0, 1.25, "a")])
    assert text == "1\n00:00:00,000 --> 00:00:01,250\na\n\n2\n01:02:05,500 --> 01:02:06,000\nb\n"
    assert srtfile.parse_srt(text) == [Cue(0.0, 1.25, "a"), Cue(3725.5, 3726.0, "b")]


def test_blank_lines_inside_a_cue_cannot_forge_another() -> None:
    forged = "line\n\n2\n00:00:00,000 --> 00:09:00,000\nINJECTED"
    cues = srtfile.parse_srt(srtfile.write_srt([Cue(0, 1, forged)]))
    assert len(cues) == 1 and cues[0].text.startswith("line\n2\n")


@pytest.mark.parametrize(("data", "message"), [
    (b"#EXTM3U\nfile:///etc/passwd\n", "no subtitle cues found"),
    (b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe bad\n", "not UTF-8"),
])
def test_refused_files_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=rf"^subtitles: .*{message}"):
        srtfile.read_srt(data)
