"""Cue splitting and SRT/WebVTT writing: pure functions, checked against the readability rules."""

from __future__ import annotations

import itertools

import srt
from hypothesis import given, settings
from hypothesis import strategies as st

from geminivideo.video.captions.subtitles import (
    DEFAULT_RULES,
    Cue,
    CueRules,
    Segment,
    Word,
    build_cues,
    segment_words,
    tidy_timing,
    timestamp,
    to_srt,
    to_vtt,
    wrap,
)


def timed(text: str, start: float = 0.0, per_word_s: float = 0.4, gap_s: float = 0.05) -> tuple[Word, ...]:
    words, at = [], start
    for token in text.split():
        words.append(Word(at, at + per_word_s, " " + token))
        at += per_word_s + gap_s
    return tuple(words)


def segment_of(text: str, start: float = 0.0, per_word_s: float = 0.4) -> Segment:
    words = timed(text, start, per_word_s)
    return Segment(words[0].start, words[-1].end, text, words)


def assert_readable(cues: list[Cue], rules: CueRules = DEFAULT_RULES) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines, cue
        assert all(0 < len(line) <= rules.max_chars_per_line for line in cue.lines), cue
        assert cue.start < cue.end <= cue.start + rules.max_duration_s + 1e-9, cue
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start, (before, after)


LONG = ("Every pair of running shoes in the store is now half price and you can order them today "
        "with free delivery to your door while the summer sale lasts")


def test_short_text_stays_on_one_line() -> None:
    assert wrap(["Welcome", "to", "our", "sale."]) == ["Welcome to our sale."]


def test_two_lines_are_balanced_and_within_the_width() -> None:
    words = LONG.split()[:12]
    lines = wrap(words)
    assert lines is not None and len(lines) == 2
    assert all(len(line) <= 42 for line in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 10
    assert " ".join(lines) == " ".join(words)


def test_text_beyond_two_lines_does_not_wrap() -> None:
    assert wrap(LONG.split()) is None


def test_a_long_segment_becomes_several_readable_cues_keeping_every_word_in_order() -> None:
    cues = build_cues([segment_of(LONG)])
    assert len(cues) >= 2
    assert_readable(cues)
    assert " ".join(" ".join(c.lines) for c in cues) == LONG


def test_a_slow_segment_is_cut_by_duration() -> None:
    cues = build_cues([segment_of("one two three four five six seven eight", per_word_s=1.5)])
    assert len(cues) >= 2
    assert_readable(cues)


def test_a_pause_between_words_ends_a_cue() -> None:
    words = (*timed("Buy now.", 0.0), *timed("Limited offer", 5.0))
    cues = build_cues([Segment(0.0, 6.0, "Buy now. Limited offer", words)])
    assert [c.text for c in cues] == ["Buy now.", "Limited offer"]


def test_a_cue_ends_after_a_sentence_once_it_holds_enough_text() -> None:
    cues = build_cues([segment_of("Welcome to our summer sale. Every pair is half price.")])
    assert [c.text for c in cues] == ["Welcome to our summer sale.", "Every pair is half price."]


def test_segment_boundaries_start_new_cues() -> None:
    cues = build_cues([segment_of("Hello there", 0.0), segment_of("General offer", 1.0)])
    assert [c.text for c in cues] == ["Hello there", "General offer"]


def test_words_are_estimated_when_whisper_gave_no_timings() -> None:
    words = segment_words(Segment(2.0, 4.0, "short and longerword", ()))
    assert [w.text for w in words] == ["short", "and", "longerword"]
    assert words[0].start == 2.0 and abs(words[-1].end - 4.0) < 1e-9
    assert words[2].end - words[2].start > words[1].end - words[1].start


def test_a_word_longer_than_a_line_is_cut_into_pieces() -> None:
    url = "https://example.com/" + "x" * 60
    cues = build_cues([Segment(0.0, 2.0, url, (Word(0.0, 2.0, url),))])
    assert_readable(cues)
    assert "".join(line for c in cues for line in c.lines) == url


def test_timing_is_tidied_overlaps_removed_and_short_cues_held_longer() -> None:
    raw = [Cue(0.0, 0.2, ("a",)), Cue(0.5, 3.0, ("b",)), Cue(2.0, 2.5, ("c",)), Cue(9.0, 30.0, ("d",))]
    tidy = tidy_timing(raw)
    assert tidy[0].start == 0.0 and tidy[0].end == 0.5  # held longer, up to the next cue only
    assert tidy[1].end == 2.0 and tidy[2].start == 2.0  # an earlier cue gives way to the next one
    assert tidy[2].end == 3.0  # held for the minimum duration
    assert tidy[3].end - tidy[3].start == DEFAULT_RULES.max_duration_s
    assert_readable(tidy)


def test_timestamps_in_both_formats() -> None:
    assert timestamp(0, ",") == "00:00:00,000"
    assert timestamp(3725.5, ".") == "01:02:05.500"
    assert timestamp(1.0005, ",") == "00:00:01,000" or timestamp(1.0005, ",") == "00:00:01,001"


def test_srt_parses_and_round_trips() -> None:
    cues = build_cues([segment_of(LONG)])
    parsed = list(srt.parse(to_srt(cues)))
    assert [p.index for p in parsed] == list(range(1, len(cues) + 1))
    assert [p.content for p in parsed] == [c.text for c in cues]
    assert [p.start.total_seconds() for p in parsed] == [c.start for c in cues]


def test_no_cues_give_an_empty_srt_and_a_header_only_vtt() -> None:
    assert to_srt([]) == ""
    assert list(srt.parse(to_srt([]))) == []
    assert to_vtt([]) == "WEBVTT\n"


def test_vtt_has_the_header_dot_timestamps_and_escapes_markup() -> None:
    text = to_vtt([Cue(1.0, 2.5, ("Fish & chips <now>",))])
    assert text.startswith("WEBVTT\n\n")
    assert "00:00:01.000 --> 00:00:02.500\nFish &amp; chips &lt;now&gt;\n" in text


word_text = st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=14)


@st.composite
def segments(draw: st.DrawFn) -> list[Segment]:
    result, at = [], 0.0
    for _ in range(draw(st.integers(1, 4))):
        words = []
        for token in draw(st.lists(word_text, min_size=1, max_size=40)):
            at += draw(st.floats(0.0, 2.0))
            length = draw(st.floats(0.0, 9.0))
            punct = draw(st.sampled_from(["", "", ",", "."]))
            words.append(Word(at, at + length, " " + token + punct))
            at += length
        result.append(Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
    return result


@settings(max_examples=150, deadline=None)
@given(segments())
def test_any_transcript_gives_readable_ordered_cues_with_every_word(segs: list[Segment]) -> None:
    cues = build_cues(segs)
    assert_readable(cues)
    expected = " ".join(w.text.strip() for s in segs for w in s.words)
    assert " ".join(" ".join(c.lines) for c in cues) == expected
