"""Two hosts: given two video workers on two "hosts" (network namespaces, each with its own veth link to the
machine that runs Redis), when the host running an FFmpeg task loses its link 2 s in, then:

- the cut host's attempt loses its lease: its FFmpeg is killed within LEASE_TIMEOUT_S + LEASE_RENEW_S of the
  cut (it cannot confirm its fencing token, and its worker cannot renew the delivery);
- the other host starts the task once the lease has lapsed (within LEASE_TIMEOUT_S + the restore sweep) and
  completes it: the result backend holds that run's SUCCESS, progress says ``completed``, the output exists
  once and whole, nothing stays queued or unacknowledged;
- when the link comes back, the cut host publishes nothing (0 progress events carry its token after the other
  host's first), stores no result, leaves the other host's output byte for byte (same SHA-256), leaves no
  partial file, answers ping by itself, and the task is not delivered a third time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from geminivideo import procs
from geminivideo.contracts import TaskStatus
from geminivideo.video.ffmpeg import is_partial
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import faults, netns

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

QUEUE = "render_queue"
IDLE_QUEUE = "maintenance"  # host B's queue until host A holds the task (nothing is sent there)
LEASE_S, RENEW_S = 8.0, 2.0  # LEASE_RENEW_S defaults to a quarter of the lease
LIMITS = {"LEASE_TIMEOUT_S": str(LEASE_S), "RENDER_TIMEOUT": "90"}
PROBE_S = 16.0  # the encode's own run time (real time): still running when the link goes
RESTORE_SLACK_S = 15.0


def _probe_ffmpeg(key: str) -> list[psutil.Process]:
    """The probe encodes of ``key`` running now (FFmpeg processes share the machine's pid namespace)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "ffmpeg" and f"comment=probe {key}" in (proc.info["cmdline"] or []):
                found.append(proc)
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hosts() -> Iterator[list[netns.Host]]:
    """Two namespaces with a veth each; a machine that cannot make them fails the test (never skips)."""
    try:
        with netns.private_network(2) as made:
            yield made
    except netns.NetnsUnavailable as exc:
        pytest.fail(f"two-hosts scenario needs network namespaces and veth pairs (root, iproute2): {exc}")


def _partials(dep: Deployment) -> list[str]:
    return sorted(p.name for p in dep.render_dir.rglob("*") if is_partial(p))


def _outputs(dep: Deployment) -> list[str]:
    return sorted(p.name for p in dep.render_dir.iterdir() if not p.name.startswith("."))


def _queued(dep: Deployment) -> int:
    client = dep.client()
    return sum(int(client.llen(key)) for key in client.keys(f"{QUEUE}*"))


def _unacked(dep: Deployment) -> int:
    return int(dep.client().zcard("unacked_index:video"))


def _backend_meta(dep: Deployment, task_id: str) -> dict[str, Any]:
    """The result backend's record, read raw (an AsyncResult caches a SUCCESS it has seen)."""
    raw = dep.client().get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


@pytest.mark.timeout(300)
def test_a_task_cut_off_with_its_host_completes_on_the_other(hosts: list[netns.Host],
                                                             deployment: MakeDeployment) -> None:
    host_a, host_b = hosts
    dep = deployment(**LIMITS)
    # The deployment's Redis listens on loopback; let the hosts reach it at the machine's end of their links
    # (private addresses that only our two namespaces can reach: protected mode would refuse them).
    client = dep.client()
    client.config_set("bind", f"127.0.0.1 {host_a.host_ip} {host_b.host_ip}")
    client.config_set("protected-mode", "no")

    def env_for(host: netns.Host) -> dict[str, str]:
        return {**dep.env, "REDIS_URL": f"redis://{host.host_ip}:{dep.redis.port}/0"}

    def start(host: netns.Host, name: str, queue: str) -> str:
        proc = dep.track(netns.start_worker_in(host, "video", queues=[queue], env=env_for(host),
                                               log_dir=dep.log_dir, name=name))
        return str(proc.extra["hostname"])

    log = dep.progress_log()
    name_a = start(host_a, "host-a", QUEUE)
    name_b = start(host_b, "host-b", IDLE_QUEUE)  # up and connected, but the task must go to A first
    key = "cut"
    result = dep.probe("video", key, PROBE_S, queue=QUEUE, output_dir=dep.render_dir, encode=True)
    faults.wait_for(lambda: dep.starts(key) and _probe_ffmpeg(key), 60, "host A encoding")
    replies = dep.app("video").control.add_consumer(QUEUE, destination=[name_b], reply=True, timeout=10)
    assert any(name_b in reply for reply in replies), f"host B did not take {QUEUE}: {replies}"
    first = dep.starts(key)[0]
    assert first["hostname"] == name_a, first
    faults.wait_for(lambda: _partials(dep), 30, "host A writing its output (mid-task)")
    (a_ffmpeg,) = _probe_ffmpeg(key)

    cut_at = time.time()
    host_a.cut()
    assert not host_a.link_up()
    a_stopped = faults.wait_for(lambda: not a_ffmpeg.is_running() or a_ffmpeg.status() == psutil.STATUS_ZOMBIE,
                                LEASE_S + RENEW_S + 10, "host A's FFmpeg stopped", 0.1)
    assert a_stopped <= LEASE_S + RENEW_S, f"host A's FFmpeg ran {a_stopped:.1f} s after the cut"
    assert not procs.ping_worker("video", name_a, dep.env), "host A still answers with its link down"

    # B gets it once the lease has lapsed, and its run is the one the backend records.
    value = result.get(timeout=LEASE_S + RESTORE_SLACK_S + PROBE_S + 60)
    done_at = time.time()
    starts = dep.starts(key)
    assert [s["hostname"] for s in starts] == [name_a, name_b]
    token_a, token_b = starts[0]["token"], starts[1]["token"]
    assert token_b == token_a + 1
    b_after_cut = starts[1]["at"] - cut_at
    assert b_after_cut <= LEASE_S + RESTORE_SLACK_S, b_after_cut
    assert value["hostname"] == name_b
    assert [d["hostname"] for d in dep.done(key)] == [name_b]
    assert dep.status(result.id) is TaskStatus.COMPLETED
    output = dep.render_dir / f"{key}.mp4"
    assert _outputs(dep) == [output.name]
    checksum = _sha256(output)
    assert (_queued(dep), _unacked(dep)) == (0, 0), "B's run left the message queued or unacknowledged"

    host_a.restore()
    pinged = faults.wait_for(lambda: procs.ping_worker("video", name_a, dep.env), 60, "host A answers ping", 0.5)
    faults.wait_for(lambda: not _partials(dep), 60, "host A's attempt over (its partial output removed)")
    time.sleep(RENEW_S + 5)  # A's stalled writes and several restore sweeps: a late publish or a third delivery
    b_first = min(at for at, e in log.of(result.id) if e.lease_token == token_b)
    late_a = [e for at, e in log.of(result.id) if e.lease_token == token_a and at >= b_first]
    a_events = [e.status.value for _, e in log.of(result.id) if e.lease_token == token_a]

    assert late_a == [], f"host A published after B's first event: {late_a}"
    assert len(dep.starts(key)) == 2, "the task was delivered a third time after the link came back"
    assert [d["hostname"] for d in dep.done(key)] == [name_b], "host A completed its attempt"
    meta = _backend_meta(dep, result.id)
    assert meta.get("status") == "SUCCESS" and meta.get("result", {}).get("hostname") == name_b, meta
    assert dep.status(result.id) is TaskStatus.COMPLETED
    assert _outputs(dep) == [output.name] and _sha256(output) == checksum, "B's output was replaced"
    assert (_partials(dep), _queued(dep), _unacked(dep)) == ([], 0, 0)
    print(f"two hosts (lease {LEASE_S:.0f} s, renew {RENEW_S:.0f} s): cut {cut_at - first['at']:.1f} s into the "
          f"encode; A's FFmpeg gone {a_stopped:.1f} s after the cut; B started {b_after_cut:.1f} s after the cut, "
          f"result {done_at - cut_at:.1f} s after it; A answered ping {pinged:.1f} s after the link came back; "
          f"A's events {a_events} (none after B's first); B's output unchanged; 1 completion")
