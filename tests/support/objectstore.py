"""A real S3-compatible store for tests: Swift + s3api on loopback, started by scripts/objectstore.sh.

``start_store(folder)`` runs the script in the foreground as a managed process (its own process group,
stopped by pid) on five free consecutive ports and waits for ``/healthcheck``. ``StoreHandle.env`` is
the environment a worker needs to reach it; ``client()`` is a boto3 client with the same settings.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from botocore.client import BaseClient

from geminivideo import procs
from geminivideo.config import Settings
from geminivideo.storage.client import build_client

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "objectstore.sh"
ACCESS_KEY, SECRET_KEY = "test:tester", "testing"
READER_KEY, READER_SECRET = "test:reader", "reader-secret"  # same account, no rights on its buckets


def _ports_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_block(count: int = 5) -> int:
    for _ in range(50):
        first = procs.free_port()
        if first + count < 65535 and _ports_free(first, count):
            return first
    raise RuntimeError(f"no {count} consecutive free loopback ports found")


@dataclass
class StoreHandle:
    proc: procs.ManagedProcess
    folder: Path
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, buckets: list[str], **extra: str) -> dict[str, str]:
        return {"S3_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "STORAGE_BUCKETS": ",".join(buckets), **extra}

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> BaseClient:
        settings = Settings(s3_endpoint_url=self.endpoint, aws_access_key_id=access_key,
                            aws_secret_access_key=secret_key)
        return build_client(settings)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.endpoint + "/healthcheck", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.stop(timeout_s=10)

    def restart(self) -> None:
        """Stop every server and start them again on the same ports and data (a store restart)."""
        self.stop()
        self.proc = _spawn(self.folder, self.port)
        _wait_healthy(self)


def _spawn(folder: Path, port: int) -> procs.ManagedProcess:
    return procs.spawn("objectstore", ["bash", str(SCRIPT), "run", str(folder), str(port)],
                       log_path=folder / "objectstore.log")


def _wait_healthy(handle: StoreHandle, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not handle.proc.alive():
            raise RuntimeError(f"objectstore exited at start:\n{handle.proc.log_tail()}")
        if handle.healthy() and _accepts_writes(handle):
            return
        time.sleep(0.3)
    handle.stop()
    raise TimeoutError(f"objectstore did not answer /healthcheck within {timeout_s:.0f} s:\n{handle.proc.log_tail()}")


def _accepts_writes(handle: StoreHandle) -> bool:
    """The proxy answers /healthcheck before the account and container servers take requests (503)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = handle.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket="gvt-ready-probe")
        client.put_object(Bucket="gvt-ready-probe", Key="probe", Body=b"1")
        return True
    except (ClientError, BotoCoreError):
        return False


def start_store(folder: Path) -> StoreHandle:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port_block()
    handle = StoreHandle(_spawn(folder, port), folder, port)
    _wait_healthy(handle)
    return handle


def new_bucket(client: BaseClient, prefix: str = "gvt") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


class SlowLink:
    """A TCP relay in front of the store on ``bind``, whose replies flow at ``rate_bytes_s`` and whose requests
    at ``up_rate_bytes_s`` when given (per connection): makes a download or an upload last long enough to kill
    the worker in the middle of it, or lets a network namespace reach the loopback-only store at the machine's
    end of its link. Stopped with ``close()``."""

    def __init__(self, target_port: int, rate_bytes_s: float | None = None, *, up_rate_bytes_s: float | None = None,
                 bind: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.rate = rate_bytes_s
        self.up_rate = up_rate_bytes_s
        self.bind = bind
        self._server = socket.create_server((bind, 0))
        self.port = int(self._server.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="slow-link").start()

    @property
    def endpoint(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, self.up_rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: float | None) -> None:
        chunk = 32 * 1024
        try:
            while data := source.recv(chunk):
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
