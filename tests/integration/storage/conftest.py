"""Fixtures of the object-store tests: one real Swift + s3api store per session, a fresh bucket per test.

The session's buckets are named up front (``STORAGE_BUCKETS`` of every process is fixed when it starts),
so one session video worker serves every test while each test still gets a bucket of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from botocore.client import BaseClient

from geminivideo import procs
from geminivideo.storage.client import reset_client
from tests.support.env import TestEnv, applied
from tests.support.objectstore import StoreHandle, start_store

POOL_SIZE = 40


@dataclass
class BucketPool:
    names: list[str]
    used: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def take(self, client: BaseClient) -> str:
        if self.used >= len(self.names):
            raise RuntimeError(f"more than {POOL_SIZE} storage tests in one session: raise POOL_SIZE")
        name = self.names[self.used]
        self.used += 1
        client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def object_store(test_env: TestEnv) -> Iterator[StoreHandle]:
    store = start_store(test_env.root / "objectstore")
    yield store
    store.stop()


@pytest.fixture(scope="session")
def bucket_pool() -> BucketPool:
    tag = uuid.uuid4().hex[:10]
    return BucketPool([f"gvt-{tag}-{i}" for i in range(POOL_SIZE)])


@pytest.fixture(scope="session")
def store_env(object_store: StoreHandle, bucket_pool: BucketPool) -> dict[str, str]:
    """What a process needs to reach the store with every session bucket allowed."""
    return object_store.env(bucket_pool.names)


@pytest.fixture
def s3(object_store: StoreHandle) -> BaseClient:
    return object_store.client()


@pytest.fixture
def bucket(bucket_pool: BucketPool, s3: BaseClient, store_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty bucket; this process's settings point at the store while the test runs."""
    name = bucket_pool.take(s3)
    with applied(store_env):
        reset_client()
        yield name
    reset_client()


@pytest.fixture(scope="module")
def storage_worker(test_env: TestEnv, store_env: dict[str, str]) -> Iterator[procs.ManagedProcess]:
    """A video worker (every video queue, concurrency 2) that reaches the session's store; per module, so no
    worker of another module (e.g. the plain ``video_worker``) is left on the standard queues to take its jobs."""
    from geminivideo.contracts import VIDEO_QUEUE_ORDER

    hostname = f"video-storage-{uuid.uuid4().hex[:6]}@localhost"
    proc = procs.start_worker("video", queues=[str(q) for q in VIDEO_QUEUE_ORDER], hostname=hostname,
                              concurrency=2, env=test_env.process_env(**store_env),
                              log_path=test_env.root / f"{hostname}.log")
    yield proc
    proc.stop()
