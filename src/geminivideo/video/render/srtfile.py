"""SRT for burned-in subtitles: read a user's file into cues, write cues as a clean SRT file.

A user's SRT is never handed to FFmpeg as is: it is parsed here and rewritten into TEMP_DIR, so the
subtitles filter only ever opens a file we wrote (a "subtitle" that is really a playlist cannot reach
the demuxer), and a cue's text cannot smuggle in extra cues through blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from geminivideo.contracts import SubtitleCue
from geminivideo.errors import InvalidPayload

MAX_SRT_BYTES = 5 * 1024 * 1024
_TIMING = re.compile(
    r"^\s*(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})"
)


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_srt(text: str, field: str = "subtitles") -> list[Cue]:
    """Cues of an SRT document (numbering optional, ``,`` or ``.`` before milliseconds)."""
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")):
        lines = block.strip("\n").split("\n")
        timing_at = next((i for i, line in enumerate(lines[:2]) if _TIMING.match(line)), None)
        if timing_at is None:
            continue
        match = _TIMING.match(lines[timing_at])
        assert match is not None
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        body = "\n".join(lines[timing_at + 1:]).strip()
        if body and end > start:
            cues.append(Cue(start, end, body))
    if not cues:
        raise InvalidPayload(f"{field}: no subtitle cues found (expected SRT blocks with "
                             "'HH:MM:SS,mmm --> HH:MM:SS,mmm' timing lines)")
    return cues


def read_srt(data: bytes, field: str = "subtitles") -> list[Cue]:
    if len(data) > MAX_SRT_BYTES:
        raise InvalidPayload(f"{field}: SRT file is larger than {MAX_SRT_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidPayload(f"{field}: SRT file is not UTF-8 text") from None
    return parse_srt(text, field)


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def clean_text(text: str) -> str:
    """One cue's text without blank lines (a blank line would end the cue and start a forged one)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(line for line in lines if line.strip())


def write_srt(cues: Iterable[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(sorted(cues, key=lambda c: c.start_s), start=1):
        blocks.append(f"{number}\n{_stamp(cue.start_s)} --> {_stamp(cue.end_s)}\n{clean_text(cue.text)}\n")
    return "\n".join(blocks)


def cues_from_payload(items: Sequence[SubtitleCue]) -> list[Cue]:
    """Cues from the payload's ``[{start, end, text}]`` list (already validated by the contract)."""
    return [Cue(float(c.start), float(c.end), c.text) for c in items]
