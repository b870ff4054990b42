"""Readable caption cues from timed words, and their SRT and WebVTT text. Pure code: no I/O, no models.

Whisper's raw segments run about 7 s and 110 characters, too long to read on screen. Cues are rebuilt
from word timestamps: a cue ends at a segment end, at a pause, after a sentence once it holds enough
text, or when the next word would break a limit (``CueRules``: characters per line, lines, seconds).
Lines are split at word boundaries and balanced, as subtitle style guides ask (e.g. the BBC's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class CueRules:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_duration_s: float = 7.0
    min_duration_s: float = 1.0  # short cues are held longer when the next one leaves room
    pause_s: float = 1.0  # a silence this long between words ends a cue
    sentence_break_chars: int = 16  # end a cue after a sentence once it holds at least this much text

    @property
    def max_chars(self) -> int:
        return self.max_chars_per_line * self.max_lines


DEFAULT_RULES = CueRules()


# ─── words ────────────────────────────────────────────────────────────────────────────────────────
def segment_words(segment: Segment, rules: CueRules = DEFAULT_RULES) -> list[Word]:
    """The segment's words (cleaned), estimated from its text when Whisper gave no word timings."""
    words = [Word(w.start, w.end, w.text.strip()) for w in segment.words if w.text.strip()]
    if not words:
        words = _spread(segment)
    return [piece for word in words for piece in _fit_word(word, rules.max_chars_per_line)]


def _spread(segment: Segment) -> list[Word]:
    """Share a segment's time among its words in proportion to their length."""
    tokens = segment.text.split()
    total = sum(len(t) + 1 for t in tokens)
    span = max(0.0, segment.end - segment.start)
    words, at = [], segment.start
    for token in tokens:
        length = span * (len(token) + 1) / total
        words.append(Word(at, at + length, token))
        at += length
    return words


def _fit_word(word: Word, width: int) -> list[Word]:
    """A word longer than a line (a URL, say) is cut into line-sized pieces; nothing else is cut."""
    if len(word.text) <= width:
        return [word]
    pieces = [word.text[i : i + width] for i in range(0, len(word.text), width)]
    step = (word.end - word.start) / len(pieces)
    return [Word(word.start + i * step, word.start + (i + 1) * step, p) for i, p in enumerate(pieces)]


# ─── lines ────────────────────────────────────────────────────────────────────────────────────────
def wrap(words: Sequence[str], rules: CueRules = DEFAULT_RULES) -> list[str] | None:
    """Lines for ``words`` within the rules (two lines balanced), or None when they do not fit."""
    width = rules.max_chars_per_line
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > rules.max_lines or any(len(line) > width for line in lines):
        return None
    if len(lines) == 2:
        return _balanced_pair(words, width)
    return lines


def _balanced_pair(words: Sequence[str], width: int) -> list[str]:
    """Two lines as even as possible, the top one not the shorter by much (reads better)."""
    best: tuple[int, int] | None = None
    for cut in range(1, len(words)):
        top, bottom = len(" ".join(words[:cut])), len(" ".join(words[cut:]))
        if top > width or bottom > width:
            continue
        score = max(top, bottom) * 2 + (1 if bottom > top else 0)
        if best is None or score < best[0]:
            best = (score, cut)
    assert best is not None  # greedy wrapping already found one valid cut
    cut = best[1]
    return [" ".join(words[:cut]), " ".join(words[cut:])]


# ─── cues ─────────────────────────────────────────────────────────────────────────────────────────
def build_cues(segments: Iterable[Segment], rules: CueRules = DEFAULT_RULES) -> list[Cue]:
    """Readable cues for ``segments``: in order, non-overlapping, within every limit of ``rules``."""
    cues: list[Cue] = []
    for segment in segments:
        for group in group_words(segment_words(segment, rules), rules):
            lines = wrap([w.text for w in group], rules)
            assert lines is not None  # group_words only builds groups that wrap
            cues.append(Cue(group[0].start, group[-1].end, tuple(lines)))
    return tidy_timing(cues, rules)


def group_words(words: Sequence[Word], rules: CueRules = DEFAULT_RULES) -> list[list[Word]]:
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and _breaks_before(current, word, rules):
            groups.append(current)
            current = []
        current.append(word)
    if current:
        groups.append(current)
    return groups


def _breaks_before(current: Sequence[Word], word: Word, rules: CueRules) -> bool:
    last = current[-1]
    if word.start - last.end >= rules.pause_s:
        return True
    if word.end - current[0].start > rules.max_duration_s:
        return True
    if wrap([w.text for w in (*current, word)], rules) is None:
        return True
    filled = len(" ".join(w.text for w in current))
    return last.text.endswith(SENTENCE_END) and filled >= rules.sentence_break_chars


def tidy_timing(cues: Sequence[Cue], rules: CueRules = DEFAULT_RULES) -> list[Cue]:
    """Times rounded to milliseconds, each cue inside [its start, next start], within the duration limits."""
    tidy: list[Cue] = []
    floor = 0.0
    for index, cue in enumerate(cues):
        start = max(_ms(cue.start), floor)
        limit = _ms(cues[index + 1].start) if index + 1 < len(cues) else float("inf")
        limit = min(limit, start + rules.max_duration_s)
        wanted = max(_ms(cue.end), start + rules.min_duration_s)
        end = _ms(min(wanted, limit))
        if end <= start:  # overlapping word timings: keep a minimal visible cue, push the next one on
            end = _ms(start + 0.05)
        tidy.append(replace(cue, start=start, end=end))
        floor = end
    return tidy


def _ms(seconds: float) -> float:
    return round(float(seconds), 3)


# ─── SRT and WebVTT ───────────────────────────────────────────────────────────────────────────────
def timestamp(seconds: float, separator: str) -> str:
    total_ms = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n{c.text}\n" for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    header = "WEBVTT\n"
    blocks = [f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{_vtt_escape(c.text)}\n" for c in cues]
    return "\n".join([header, *blocks])


def _vtt_escape(text: str) -> str:
    # "<" starts a tag and "-->" ends a timing line in WebVTT; "&" starts an entity.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
