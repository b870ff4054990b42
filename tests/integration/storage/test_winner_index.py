"""The winner index shared through the object store (INDEX_URL): versions plus a pointer written last.

Given two hosts' index folders and one INDEX_URL in the real store, when host A saves an index, then host
B's reader loads the version the pointer names and answers the same search; when A saves again, B
follows within the pointer's refresh time; a writer on B starts from A's version, not from its own disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from botocore.client import BaseClient

from geminivideo.ml.winners import index as winner_index
from geminivideo.storage import index as remote
from tests.support.env import applied


def _unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_index_saved_on_one_host_answers_the_same_on_another(bucket: str, s3: BaseClient, tmp_path: Path) -> None:
    with applied({"INDEX_URL": f"s3://{bucket}/index/"}):
        host_a = winner_index.IndexStore(tmp_path / "a")
        host_b = winner_index.IndexStore(tmp_path / "b")
        assert host_b.current().ntotal == 0  # no pointer yet: an empty index, not an error

        index = host_a.load_for_write()
        vectors = _unit(50, seed=1)
        winner_index.upsert(index, range(1, 51), vectors)
        with host_a.write_lock():
            host_a.save(index)

        pointer = json.loads(s3.get_object(Bucket=bucket, Key="index/winners.pointer.json")["Body"].read())
        assert pointer["key"].startswith("index/versions/winners-")
        s3.head_object(Bucket=bucket, Key=pointer["key"])  # the version the pointer names is whole
        query = vectors[7:8]
        time.sleep(remote.POINTER_TTL_S)
        assert winner_index.search(host_b.current(), query, 3) == winner_index.search(index, query, 3)

        on_b = host_b.load_for_write()  # a writer on B starts from A's saved version
        assert sorted(winner_index.ids_of(on_b).tolist()) == list(range(1, 51))
        winner_index.upsert(on_b, [99], _unit(1, seed=2))
        with host_b.write_lock():
            host_b.save(on_b)

        time.sleep(remote.POINTER_TTL_S)
        assert 99 in winner_index.ids_of(host_a.current()).tolist()
        versions = s3.list_objects_v2(Bucket=bucket, Prefix="index/versions/")["KeyCount"]
        assert versions == 2
