"""``Idempotency-Key`` on job submission: the same key and body return the same job, a different body is
refused, and keys are kept 24 hours.

The claim is one ``SET NX`` of ``{body hash, task id}`` *before* the job is sent, with the task id chosen
up front, so two concurrent retries of one POST get the same task id and only one of them sends it. A
submission the broker refused releases its claim, so the client's next retry can succeed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from geminivideo.errors import InvalidPayload

KEEP_S = 24 * 3600
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    task_id: str
    fresh: bool  # True: this call claimed the key and must send the job; False: a replay of an earlier one


def body_hash(kind: str, payload: dict[str, Any]) -> str:
    """Hash of the validated request (kind and payload in canonical JSON), so formatting does not matter."""
    canonical = json.dumps({"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _redis_key(owner: str, key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise InvalidPayload(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable characters")
    return "idempotency:" + hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()


def claim(client: redis.Redis, owner: str, key: str, digest: str, task_id: str) -> Claim:
    """Claim ``key`` for ``owner`` (the API key's name) with a new task id, or return the earlier claim's.

    Raises InvalidPayload when the key was used with a different body.
    """
    name = _redis_key(owner, key)
    record = json.dumps({"hash": digest, "task_id": task_id})
    if client.set(name, record, nx=True, ex=KEEP_S):
        return Claim(task_id, True)
    raw = client.get(name)
    if raw is None:  # expired between the two calls: claim it again
        return claim(client, owner, key, digest, task_id)
    earlier = json.loads(raw)
    if earlier["hash"] != digest:
        raise InvalidPayload("Idempotency-Key was already used with a different request body (use a new key)")
    return Claim(str(earlier["task_id"]), False)


def release(client: redis.Redis, owner: str, key: str) -> None:
    """Forget a claim whose job was never sent, so the client's retry sends it."""
    client.delete(_redis_key(owner, key))
