"""The FAISS index store with real FAISS: stable ids, no duplicates, removal, filters, atomic files, reload."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from geminivideo.errors import ModelUnavailable, PermanentError, ProcessingFailed, ResourceBusy
from geminivideo.ml.winners import index as wi


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_vector_ids_are_stable_positive_int64_and_distinct() -> None:
    ids = {wi.vector_id_for(f"ad-{i}") for i in range(10_000)}
    assert len(ids) == 10_000
    assert all(0 < i < 2**63 for i in ids)
    assert wi.vector_id_for("ad-7") == wi.vector_id_for("ad-7")


def test_upsert_replaces_a_vector_instead_of_adding_a_duplicate() -> None:
    index = wi.new_index()
    vectors = unit_vectors(3)
    wi.upsert(index, [11, 22, 33], vectors)
    wi.upsert(index, [22], vectors[:1])
    assert index.ntotal == 3
    assert sorted(wi.ids_of(index).tolist()) == [11, 22, 33]
    np.testing.assert_allclose(index.reconstruct(22), vectors[0], rtol=1e-6)
    best = wi.search(index, vectors[:1], 2)[0]
    assert {best[0][0], best[1][0]} == {11, 22} and best[0][1] == pytest.approx(1.0, abs=1e-5)


def test_remove_drops_only_the_given_ids() -> None:
    index = wi.new_index()
    wi.upsert(index, [1, 2, 3], unit_vectors(3))
    assert wi.remove(index, [2, 99]) == 1
    assert sorted(wi.ids_of(index).tolist()) == [1, 3]
    assert wi.remove(index, []) == 0


def test_search_is_cosine_ranked_and_filters_inside_faiss() -> None:
    index = wi.new_index()
    vectors = unit_vectors(50, seed=1)
    wi.upsert(index, range(100, 150), vectors)
    ranked = wi.search(index, vectors[7:8], 5)[0]
    assert ranked[0] == (107, pytest.approx(1.0, abs=1e-5))
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    allowed = np.array([120, 130, 140], dtype=np.int64)
    filtered = wi.search(index, vectors[7:8], 5, allowed)[0]
    assert {i for i, _ in filtered} == {120, 130, 140}
    assert wi.search(index, vectors[7:8], 5, np.array([], dtype=np.int64)) == [[]]
    assert wi.search(wi.new_index(), vectors[:1], 5) == [[]]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = wi.IndexStore(tmp_path / "idx")
    assert store.current().ntotal == 0  # no file yet: an empty index, not an error
    index = wi.new_index()
    wi.upsert(index, [5, 6], unit_vectors(2))
    with store.write_lock():
        store.save(index)
    loaded = wi.IndexStore(tmp_path / "idx").current()
    assert sorted(wi.ids_of(loaded).tolist()) == [5, 6]
    assert not list((tmp_path / "idx").glob(f"{wi.TMP_PREFIX}*"))


def test_reader_reloads_when_another_store_replaces_the_file(tmp_path: Path) -> None:
    reader, writer = wi.IndexStore(tmp_path), wi.IndexStore(tmp_path)
    index = wi.new_index()
    wi.upsert(index, [1], unit_vectors(1))
    writer.save(index)
    first = reader.current()
    assert reader.current() is first  # unchanged file: no reload
    wi.upsert(index, [2], unit_vectors(1, seed=2))
    writer.save(index)
    assert reader.current().ntotal == 2


def test_a_second_writer_waits_then_gives_up_with_a_retryable_error(tmp_path: Path) -> None:
    store = wi.IndexStore(tmp_path)
    other = wi.IndexStore(tmp_path)
    with store.write_lock(), pytest.raises(ResourceBusy, match="another writer holds"), other.write_lock(timeout_s=0.3):
        pass
    with wi.IndexStore(tmp_path).write_lock(timeout_s=0.3):
        pass  # released on exit


def test_the_lock_serialises_writers(tmp_path: Path) -> None:
    inside, overlaps = [0], []

    def write() -> None:
        with wi.IndexStore(tmp_path).write_lock(timeout_s=10):
            inside[0] += 1
            overlaps.append(inside[0])
            threading.Event().wait(0.05)
            inside[0] -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1, 1, 1]


def test_the_next_writer_removes_temp_files_of_a_dead_one(tmp_path: Path) -> None:
    stale = tmp_path / f"{wi.TMP_PREFIX}424242"
    stale.write_bytes(b"half an index")
    with wi.IndexStore(tmp_path).write_lock():
        assert not stale.exists()


def test_a_damaged_file_is_refused_or_set_aside_for_a_rebuild(tmp_path: Path) -> None:
    store = wi.IndexStore(tmp_path)
    store.index_path.write_bytes(b"not a faiss index")
    with pytest.raises(ProcessingFailed, match="unreadable"):
        store.current()
    with pytest.raises(ProcessingFailed):
        store.load_for_write()
    assert store.load_for_write(recover=True).ntotal == 0
    assert list(tmp_path.glob(f"{wi.INDEX_FILE}.damaged-*"))


def test_without_faiss_the_error_names_the_package_to_install() -> None:
    script = (
        "import sys; sys.modules['faiss'] = None\n"
        "from geminivideo.ml.winners import index as winner_index\n"
        "from geminivideo.errors import ModelUnavailable\n"
        "try:\n    winner_index.new_index()\n"
        "except ModelUnavailable as exc:\n    print('ModelUnavailable:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "ModelUnavailable: faiss is not installed" in out.stdout
    assert "faiss-cpu" in out.stdout
    assert issubclass(ModelUnavailable, PermanentError)  # fails the task at once, never retried
