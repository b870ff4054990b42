"""Creative DNA validation and the documented text builder (pure, no model)."""

from __future__ import annotations

import pytest

from geminivideo.errors import InvalidPayload
from geminivideo.ml.winners.creative_dna import (
    KNOWN_FIELDS,
    CreativeDNA,
    content_hash,
    dna_text,
    expand_glossary,
    generate_dna,
    parse_dna,
)

FULL = {
    "hook_type": "UGC testimonial",
    "visual_style": "handheld selfie",
    "pacing": "fast cuts",
    "cta_style": "green text button",
    "audio_style": "trending music",
    "headline": "Run further",
    "copy": "Our lightest shoe yet.",
    "format": "9:16",
    "duration_s": 15,
    "notes": "shot on a phone",
}


def test_unknown_keys_are_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_dna({"hook": "question", "colour": "red", "pacing": "fast"})
    message = str(caught.value)
    assert "unknown key(s) colour, hook" in message
    assert all(key in message for key in KNOWN_FIELDS)


@pytest.mark.parametrize(
    ("dna", "named"),
    [
        ({"hook_type": "x", "format": "4:3"}, "creative_dna.format"),
        ({"hook_type": "x", "duration_s": 0}, "creative_dna.duration_s"),
        ({"hook_type": "x" * 201}, "creative_dna.hook_type"),
        ({"format": "9:16", "duration_s": 10}, "at least one of hook_type"),
        ({}, "at least one of"),
    ],
)
def test_bad_values_name_the_field(dna: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidPayload, match=named.replace(".", r"\.")):
        parse_dna(dna)


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidPayload, match="expected an object"):
        parse_dna(["UGC"])


def test_stored_form_round_trips_with_the_keys_users_send() -> None:
    dna = parse_dna(FULL)
    assert dna.to_json() == {**FULL, "duration_s": 15.0}
    assert parse_dna(dna.to_json()) == dna


def test_text_follows_the_documented_order_and_leaves_out_absent_and_exact_fields() -> None:
    text = dna_text(parse_dna(FULL))
    assert text == (
        "UGC (user-generated content) testimonial. handheld selfie. fast cuts. green text button. trending music. "
        "Run further. Our lightest shoe yet. shot on a phone."
    )
    assert dna_text(parse_dna({"pacing": "  slow\n dramatic  ", "format": "16:9"})) == "slow dramatic."


def test_glossary_expands_whole_words_only() -> None:
    assert expand_glossary("UGC ad with a CTA") == "UGC (user-generated content) ad with a CTA (call to action)"
    assert expand_glossary("UGCs and CTAs") == "UGCs and CTAs"


def test_hash_changes_with_the_text_and_the_model_only() -> None:
    text = dna_text(parse_dna(FULL))
    assert content_hash(text, "m") == content_hash(text, "m")
    assert content_hash(text, "m") != content_hash(text + " x", "m")
    assert content_hash(text, "m") != content_hash(text, "other-model")
    reordered = dict(reversed(list(FULL.items())))
    assert content_hash(dna_text(parse_dna(reordered)), "m") == content_hash(text, "m")


def test_generated_dna_is_valid_and_deterministic() -> None:
    first = [generate_dna(seed) for seed in range(50)]
    assert first == [generate_dna(seed) for seed in range(50)]
    assert all(isinstance(dna, CreativeDNA) and dna_text(dna) for dna in first)
    assert len({dna_text(dna) for dna in first}) == 50
