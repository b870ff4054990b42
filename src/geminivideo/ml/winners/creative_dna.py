"""Creative DNA: the validated description of an ad's creative, and the text that gets embedded.

DNA fields (all optional, at least one descriptive field required):

    hook_type, visual_style, pacing, cta_style, audio_style, headline, copy, notes  free text
    format                                                                         "9:16", "1:1" or "16:9"
    duration_s                                                                     seconds, 0 < d <= 600

The embedded text is built by ``dna_text``: the descriptive fields' values, in this fixed order,
each ending with a full stop, absent fields leaving no trace:

    "{hook_type}. {visual_style}. {pacing}. {cta_style}. {audio_style}. {headline}. {copy}. {notes}."

Field labels are left out on purpose: with all-MiniLM-L6-v2, shared labels ("hook:", "pacing:") made
every pair of creatives look alike and drowned the differences that matter (measured: a "user-generated
review, quick edits" DNA came out nearer to "cinematic slow product shot" than to "UGC testimonial, fast
cuts" with labels, and the right way round without). ``format`` and ``duration_s`` are not embedded
either: they are exact attributes, used as search filters and shown with results. Ad-industry acronyms the
general-purpose model does not know are spelled out (``GLOSSARY``: "UGC" becomes "UGC (user-generated
content)"), in DNA texts and search queries alike. Whitespace is collapsed.

``content_hash`` covers the text, ``TEXT_BUILDER_VERSION`` and the model name, so a change to any of them
re-embeds the ad at the next rebuild.
"""

from __future__ import annotations

import hashlib
import random
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geminivideo.contracts import describe_errors
from geminivideo.errors import InvalidPayload

TEXT_BUILDER_VERSION = 1


class AdFormat(StrEnum):
    VERTICAL = "9:16"
    SQUARE = "1:1"
    LANDSCAPE = "16:9"




def _short_text() -> Any:
    return Field(None, min_length=1, max_length=200)


class CreativeDNA(BaseModel):
    """One ad's creative DNA; unknown keys are refused (see ``parse_dna`` for the message)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    hook_type: str | None = _short_text()
    visual_style: str | None = _short_text()
    pacing: str | None = _short_text()
    cta_style: str | None = _short_text()
    audio_style: str | None = _short_text()
    headline: str | None = Field(None, min_length=1, max_length=300)
    # "copy" would shadow BaseModel.copy as an attribute name; the key users send is still "copy".
    body_copy: str | None = Field(None, alias="copy", min_length=1, max_length=1000)
    format: AdFormat | None = None
    duration_s: float | None = Field(None, gt=0, le=600)
    notes: str | None = Field(None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _describes_something(self) -> CreativeDNA:
        if not any(getattr(self, name) for name in DESCRIPTIVE_FIELDS):
            keys = (CreativeDNA.model_fields[name].alias or name for name in DESCRIPTIVE_FIELDS)
            raise ValueError(f"at least one of {', '.join(keys)} must be given")
        return self

    def to_json(self) -> dict[str, Any]:
        """The stored form: only the fields that are set."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


DESCRIPTIVE_FIELDS = (
    "hook_type",
    "visual_style",
    "pacing",
    "cta_style",
    "audio_style",
    "headline",
    "body_copy",
    "notes",
)
KNOWN_FIELDS = tuple(info.alias or name for name, info in CreativeDNA.model_fields.items())


def parse_dna(data: Any, *, field: str = "creative_dna") -> CreativeDNA:
    """Validate ``data``; raise InvalidPayload naming unknown keys (with the known ones) and bad values."""
    if isinstance(data, CreativeDNA):
        return data
    if not isinstance(data, dict):
        raise InvalidPayload(
            f"{field}: expected an object with keys {', '.join(KNOWN_FIELDS)}, got {type(data).__name__}"
        )
    unknown = sorted(str(key) for key in data if key not in KNOWN_FIELDS)
    if unknown:
        raise InvalidPayload(f"{field}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(KNOWN_FIELDS)}")
    try:
        return CreativeDNA.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload("invalid creative DNA: " + describe_errors(exc, prefix=f"{field}.", root=field)) from None


GLOSSARY: dict[str, str] = {
    "UGC": "UGC (user-generated content)",
    "CTA": "CTA (call to action)",
    "POV": "POV (point of view)",
}
_GLOSSARY_RE = re.compile(r"\b(" + "|".join(GLOSSARY) + r")\b")


def expand_glossary(text: str) -> str:
    """Spell out the acronyms of ``GLOSSARY`` and collapse whitespace."""
    return _GLOSSARY_RE.sub(lambda match: GLOSSARY[match.group(1)], " ".join(text.split()))


def dna_text(dna: CreativeDNA) -> str:
    """The text embedded for ``dna``, built in the fixed order documented in the module docstring."""
    values = (getattr(dna, name) for name in DESCRIPTIVE_FIELDS)
    return " ".join(f"{expand_glossary(value).rstrip('.')}." for value in values if value)


def content_hash(text: str, model_name: str) -> str:
    """What decides whether an ad must be re-embedded: the text, the builder version and the model."""
    digest = hashlib.sha256(f"v{TEXT_BUILDER_VERSION}\x00{model_name}\x00{text}".encode())
    return digest.hexdigest()


# ─── Generated DNA for demos and benchmarks ───────────────────────────────────────────────────────
_VOCABULARY: dict[str, tuple[str, ...]] = {
    "hook_type": (
        "UGC testimonial",
        "problem-solution",
        "before and after",
        "unboxing",
        "founder story",
        "question to camera",
        "shocking statistic",
        "product demo",
        "customer review",
        "meme remix",
    ),
    "visual_style": (
        "handheld selfie video",
        "cinematic studio lighting",
        "bright flat lay",
        "animated motion graphics",
        "split screen comparison",
        "lo-fi phone footage",
        "clean white background product shot",
    ),
    "pacing": ("fast cuts every second", "quick edits", "steady medium pace", "slow dramatic shots", "single take"),
    "cta_style": (
        "green text button Shop Now",
        "spoken call to action",
        "swipe up arrow",
        "limited time offer banner",
        "end card with discount code",
    ),
    "audio_style": (
        "trending upbeat music",
        "voiceover narration",
        "ASMR product sounds",
        "calm acoustic guitar",
        "no music, natural sound",
    ),
}
_PRODUCTS = ("running shoes", "skin serum", "coffee maker", "meal kit", "yoga mat", "wireless earbuds", "pet food")


def generate_dna(seed: int) -> CreativeDNA:
    """A plausible, deterministic DNA for ``seed`` (used by ``bench/winners.py`` and for demo data)."""
    rng = random.Random(seed)
    picks = {name: rng.choice(options) for name, options in _VOCABULARY.items()}
    product = rng.choice(_PRODUCTS)
    return CreativeDNA(
        **picks,
        headline=f"The {product} everyone is talking about",
        format=rng.choice(list(AdFormat)),
        duration_s=float(rng.choice((6, 10, 15, 20, 30, 45, 60))),
        notes=f"{product} ad variant {seed}",
    )
