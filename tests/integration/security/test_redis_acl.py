"""The compose Redis ACL for real: ``deploy/redis/start-redis.sh`` builds the ACL file from secret URLs and
starts a real redis-server with it. Each role's user can do its job (the API enqueues, workers consume and
store results, a beat takes its lock) and no role can FLUSHALL, CONFIG, DEBUG or SHUTDOWN; the default,
passwordless user is off; the ACL file holds hashes, never a password."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from geminivideo import procs
from geminivideo.contracts import QueueName, TaskName
from tests.conftest import StartWorker
from tests.support import env as support_env

ROOT = Path(__file__).resolve().parents[3]
ROLES = ["api", "ml", "video", "beat", "flower"]
DENIED = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "appendonly", "no"),
          ("DEBUG", "SLEEP", "0"), ("SHUTDOWN", "NOSAVE"), ("ACL", "LIST"), ("REPLICAOF", "NO", "ONE"),
          ("SCRIPT", "FLUSH"), ("MONITOR",)]


@dataclass
class AclRedis:
    port: int
    urls: dict[str, str]
    acl_file: Path


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    root = tmp_path_factory.mktemp("redis-acl")
    port = procs.free_port()
    secrets_dir = root / "secrets"
    secrets_dir.mkdir()
    urls = {role: f"redis://{role}:{secrets.token_urlsafe(24)}@127.0.0.1:{port}/0" for role in ROLES}
    for role, url in urls.items():
        (secrets_dir / f"redis_url_{role}").write_text(url)
    acl_file = root / "users.acl"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SECRETS_DIR": str(secrets_dir),
           "ROLES": str(ROOT / "deploy/redis/roles.acl"), "ACL_FILE": str(acl_file)}
    argv = ["sh", str(ROOT / "deploy/redis/start-redis.sh"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(root),
            # Allowed by the server here, so that only the ACL stands between each role and DEBUG.
            "--enable-debug-command", "yes"]
    proc = procs.spawn("redis-acl", argv, env=env, log_path=root / "redis.log")
    try:
        procs.wait_until(lambda: procs.redis_answers(urls["beat"]) or not proc.alive(), 15, what="ACL redis")
        assert proc.alive(), proc.log_tail()
        yield AclRedis(port, urls, acl_file)
    finally:
        proc.stop()


def test_the_acl_file_holds_hashes_and_the_default_user_is_off(acl_redis: AclRedis) -> None:
    text = acl_redis.acl_file.read_text()
    for url in acl_redis.urls.values():
        assert url.split(":")[2].split("@")[0] not in text
    anonymous = redis.Redis(port=acl_redis.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl_redis.urls["api"].replace("@", "x@"), socket_timeout=5).ping()


@pytest.mark.parametrize("role", ROLES)
def test_no_role_may_wipe_reconfigure_debug_or_stop_redis(acl_redis: AclRedis, role: str) -> None:
    client = redis.Redis.from_url(acl_redis.urls[role], socket_timeout=5)
    assert client.ping()
    client.set(f"acl-test:{role}", "1", ex=60)  # ordinary work is allowed
    for command in DENIED:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    assert redis.Redis.from_url(acl_redis.urls["beat"]).get(f"acl-test:{role}") == b"1"  # nothing was wiped


def _sender(url: str) -> Celery:
    return Celery(f"acl-sender-{uuid.uuid4().hex[:6]}", broker=url, backend=url, set_as_current=False)


@pytest.mark.parametrize(("app", "role", "task", "queue"), [
    ("ml", "ml", TaskName.ML_PING, QueueName.ML_DEFAULT),
    ("video", "video", TaskName.VIDEO_PING, QueueName.MAINTENANCE),
])
def test_workers_consume_what_the_api_enqueues(
    acl_redis: AclRedis, start_worker: StartWorker, app: str, role: str, task: TaskName, queue: QueueName,
    test_env: support_env.TestEnv,
) -> None:
    worker_url = acl_redis.urls[role]
    start_worker(app, queues=[str(queue)], REDIS_URL=worker_url, CELERY_BROKER_URL=worker_url,
                 CELERY_RESULT_BACKEND=worker_url)
    sender = _sender(acl_redis.urls["api"])
    try:
        result = sender.send_task(str(task), queue=str(queue))
        assert result.get(timeout=60) is not None
    finally:
        sender.close()


def test_a_beat_can_take_its_lock(acl_redis: AclRedis) -> None:
    beat = redis.Redis.from_url(acl_redis.urls["beat"], socket_timeout=5)
    lock = beat.lock(f"acl-test:redbeat-lock:{uuid.uuid4().hex[:6]}", timeout=10)
    assert lock.acquire(blocking=False) and lock.release() is None
