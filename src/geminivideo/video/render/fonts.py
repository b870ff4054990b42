"""The font a text overlay is drawn with: drawtext uses one font file and has no glyph fallback.

DejaVu Sans draws Latin, Greek and Cyrillic text; it has no emoji, which it would draw as empty boxes.
For a text with characters outside it, fontconfig (``fc-match``, charset coverage before family) picks
the installed scalable font that covers the most of them, e.g. Symbola (Debian's ``fonts-symbola``,
installed by ``make setup``) for "🔥 50% off". Emoji are drawn in the overlay's colour: drawtext cannot
draw colour bitmap fonts. Emoji presentation selectors and zero-width joiners are dropped from the text,
since a font without them would draw each as a box; a joined sequence shows as its separate emoji.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEFAULT_FAMILY = "DejaVu Sans"
_DEFAULT_COVERS_BELOW = 0x250  # Basic Latin to Latin Extended-B: DejaVu Sans has all of it
_INVISIBLE = dict.fromkeys((0x200D, 0xFE0E, 0xFE0F))  # ZWJ and text/emoji presentation selectors


def drawable_text(text: str) -> str:
    """The text without the invisible joiners and selectors that a monochrome font lacks."""
    return text.translate(_INVISIBLE)


@lru_cache(maxsize=512)
def font_for(text: str) -> str:
    """The font file to draw ``text`` with: DejaVu Sans when it covers the text, else fontconfig's best cover."""
    code_points = sorted({ord(c) for c in drawable_text(text) if not c.isspace()})
    if all(c < _DEFAULT_COVERS_BELOW for c in code_points):
        return DEFAULT_FONT
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        log.warning("fc-match not found: text overlays with characters outside %s may show boxes", DEFAULT_FAMILY)
        return DEFAULT_FONT
    charset = " ".join(f"{c:x}" for c in code_points)
    try:
        done = subprocess.run([fc_match, "--format", "%{file}", f"{DEFAULT_FAMILY}:scalable=true:charset={charset}"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("fc-match failed (%s): drawing with %s", exc, DEFAULT_FAMILY)
        return DEFAULT_FONT
    chosen = done.stdout.strip()
    if done.returncode != 0 or not chosen or not Path(chosen).is_file():
        return DEFAULT_FONT
    return chosen
